// `wrangler dev` as users run it, for the benchmarks (bench/run.mjs section 6 and
// bench/devpath.mjs): N-1 with its own dev config (the same flags as scripts/dev.sh) and
// N-1's original JavaScript port (cloudfare_worker/worker.js in leezhuuuuu/N-1, given by
// BENCH_PORT_JS: its CONFIG is rewritten in a temp copy at run time; nothing of it is kept
// in this repository).
//
// `wrangler dev` runs two workerd processes: a proxy worker on the port the user asked for,
// which forwards each request to a second workerd holding the user worker (plus wrangler's
// own Node process, which drives both and prints the logs). CPU time is read per process.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { sleep } from "./lib.mjs";

const ROOT = path.resolve(new URL("..", import.meta.url).pathname);
const WRANGLER = path.join(ROOT, "node_modules/wrangler/bin/wrangler.js");

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function procStat(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (state === "Z") return null; // exited, not yet reaped
    return { pid, comm, ppid: Number(ppid), cmd: readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean) };
  } catch {
    return null;
  }
}

/** All descendants of `root` (pid list), with their command lines. */
export function descendants(root) {
  const all = [];
  for (const p of readdirSync("/proc")) if (/^\d+$/.test(p)) all.push(procStat(Number(p)));
  const kids = new Map();
  for (const s of all.filter(Boolean)) {
    if (!kids.has(s.ppid)) kids.set(s.ppid, []);
    kids.get(s.ppid).push(s);
  }
  const out = [];
  const walk = (pid) => {
    for (const k of kids.get(pid) ?? []) {
      out.push(k);
      walk(k.pid);
    }
  };
  walk(root);
  return out;
}

/**
 * The same transformation as scripts/dev.sh: wrangler.toml without its [ai] section
 * (`npm run dev`'s wrangler.local.toml), written next to wrangler.toml so that its relative
 * paths (main, [build], [assets]) resolve as they do for `npm run dev`.
 */
export function writeLocalConfig(file = "wrangler.local.toml", transform = (s) => s) {
  const toml = readFileSync(path.join(ROOT, "wrangler.toml"), "utf8");
  let skip = false;
  const lines = [];
  for (const line of toml.split("\n")) {
    if (/^\[ai\]/.test(line)) {
      skip = true;
      continue;
    }
    if (/^\[/.test(line)) skip = false;
    if (!skip) lines.push(line);
  }
  const out = path.join(ROOT, file);
  const text = transform(lines.join("\n"));
  // A running `wrangler dev` watches its config: rewriting it in place can let it reload from a
  // half-written (empty) file and exit ("Missing entry-point"). Unchanged: not written; else
  // written whole beside it and renamed over it.
  if (!existsSync(out) || readFileSync(out, "utf8") !== text) {
    writeFileSync(`${out}.tmp`, text);
    renameSync(`${out}.tmp`, out);
  }
  return out;
}

/** A dotenv file (for `--env-file`) holding `vars`; values are single-quoted (no newlines). */
export function writeEnvFile(dir, vars) {
  const file = path.join(dir, "bench.env");
  writeFileSync(file, Object.entries(vars).map(([k, v]) => `${k}='${String(v).replace(/\n/g, " ")}'\n`).join(""));
  return file;
}

/**
 * Start `wrangler dev --config <config> --ip 127.0.0.1 --port <port> ...args` in `cwd`, with
 * CLOUDFLARE_CF_FETCH_ENABLED=false and no telemetry (as scripts/dev.sh does through env.sh).
 * Resolves once the worker answers `probe` (a function given the base URL that returns true when
 * the worker is ready) and the processes are known: `pid` is the workerd holding the user worker,
 * `proxyPid` the one holding wrangler's proxy worker, `nodePid` wrangler itself.
 */
export async function startWranglerDev({ name, cwd = ROOT, config, args = [], env = {}, probe, timeoutMs = 180_000, log = () => {} }) {
  const port = await freePort();
  const argv = [WRANGLER, "dev", ...(config ? ["--config", config] : []), "--ip", "127.0.0.1", "--port", String(port), ...args];
  const child = spawn(process.execPath, argv, {
    cwd,
    env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false", FORCE_COLOR: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group, so that close() ends wrangler and its workerd processes together
  });
  let output = "";
  const onData = (d) => {
    output += d.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  let exited = null;
  child.once("exit", (code, sig) => (exited = `${code ?? sig}`));
  const url = `http://127.0.0.1:${port}`;
  const t0 = Date.now();
  const close = async () => {
    if (exited === null) {
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {}
      for (let i = 0; i < 50 && exited === null; i++) await sleep(100);
      if (exited === null) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {}
      }
    }
  };
  try {
    for (;;) {
      if (exited !== null) throw new Error(`${name}: wrangler dev exited (${exited}):\n${output.slice(-3000)}`);
      if (Date.now() - t0 > timeoutMs) throw new Error(`${name}: wrangler dev not ready after ${timeoutMs / 1000} s:\n${output.slice(-3000)}`);
      if (/Ready on http/.test(output)) {
        try {
          if (await probe(url)) break;
        } catch {}
      }
      await sleep(300);
    }
    // A custom [build] may rebuild once just after start (wrangler's watcher): wait until
    // the output has been quiet for 3 s and the worker still answers.
    let seen = output.length;
    let quietSince = Date.now();
    while (Date.now() - quietSince < 3000) {
      await sleep(250);
      if (output.length !== seen) {
        seen = output.length;
        quietSince = Date.now();
      }
      if (Date.now() - t0 > timeoutMs) break;
    }
    for (;;) {
      try {
        if (await probe(url)) break;
      } catch {}
      if (exited !== null || Date.now() - t0 > timeoutMs) throw new Error(`${name}: wrangler dev stopped answering:\n${output.slice(-3000)}`);
      await sleep(300);
    }
  } catch (e) {
    await close();
    throw e;
  }
  const procs = () => devProcs(child.pid, port);
  const p = procs();
  log(`${name}: wrangler dev ready on ${url} in ${((Date.now() - t0) / 1000).toFixed(1)} s (user workerd ${p.pid}, proxy workerd ${p.proxyPid}, wrangler ${p.nodePid})`);
  return { name, url, port, rootPid: child.pid, ...p, procs, output: () => output, exited: () => exited, close };
}

/**
 * The processes of a wrangler dev server started by process `root` and serving on `port`:
 * `pid` the workerd holding the user worker, `proxyPid` the workerd holding wrangler's proxy
 * worker (on `port`), `nodePid` wrangler's Node process.
 */
export function devProcs(root, port) {
  const d = descendants(root);
  const node = d.find((p) => /wrangler-dist\/cli\.js/.test(p.cmd.join(" ")));
  const workerd = d.filter((p) => p.comm.startsWith("workerd"));
  const proxy = workerd.find((p) => p.cmd.some((a) => a === `--socket-addr=entry=127.0.0.1:${port}`));
  const user = workerd.filter((p) => p !== proxy);
  return {
    nodePid: node?.pid ?? root,
    proxyPid: proxy?.pid,
    pid: user.length === 1 ? user[0].pid : undefined,
    userCmd: user[0]?.cmd,
    tree: d.map((p) => `${p.pid}<${p.ppid} ${p.cmd.join(" ").slice(0, 160)}`),
  };
}

// ---------------------------------------------------------------- the JavaScript port

/**
 * A temp directory holding the port (`portJs`, its original file) with its CONFIG object
 * replaced by `config`, and a wrangler.toml for it (same compatibility date as N-1).
 * Returns the directory; nothing is written inside this repository.
 */
export function preparePort(portJs, config, { compatibilityDate }) {
  const src = readFileSync(portJs, "utf8");
  const start = src.indexOf("const CONFIG = {");
  if (start < 0) throw new Error(`${portJs}: no "const CONFIG = {" found (is it cloudfare_worker/worker.js of leezhuuuuu/N-1?)`);
  // The object ends at its matching brace (its strings hold no braces in the original).
  let depth = 0;
  let end = -1;
  for (let i = src.indexOf("{", start); i < src.length; i++) {
    if (src[i] === "{") depth++;
    else if (src[i] === "}" && --depth === 0) {
      end = i + 1;
      break;
    }
  }
  if (end < 0) throw new Error(`${portJs}: CONFIG object not closed`);
  const patched = `${src.slice(0, start)}const CONFIG = ${JSON.stringify(config, null, 1)}${src.slice(end)}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), "n1-port-"));
  writeFileSync(path.join(dir, "worker.js"), patched);
  writeFileSync(
    path.join(dir, "wrangler.toml"),
    `name = "n1-port"\nmain = "worker.js"\ncompatibility_date = "${compatibilityDate}"\nsend_metrics = false\n`,
  );
  return { dir, script: path.join(dir, "worker.js"), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The port's CONFIG for bench ensembles ({name: {panel: [{url, model}], summary: {url, model}}}). */
export function portConfig(ens, token, defaultName) {
  const model = (x) => ({ endpoint: x.url, bearerToken: "bench", modelName: x.model, temperature: 0.5, maxRetries: 1, timeout: 120 });
  return {
    defaultCombination: defaultName,
    combinations: Object.entries(ens).map(([name, e]) => ({
      name,
      apiBearerToken: token,
      streamStatusFeedback: false,
      useParallelAnalysis: true,
      debugMode: false,
      textModels: e.panel.map(model),
      textSummaryModel: { ...model(e.summary), keepHistory: false, summaryPrompt: "Synthesize the best answer from these answers." },
    })),
  };
}

/** TCP ports `pid` listens on (from /proc/net/tcp{,6} and its socket fds). */
export function listeningPorts(pid) {
  const inodes = new Set();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1]);
      } catch {}
    }
  } catch {
    return [];
  }
  const ports = [];
  for (const f of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(f, "utf8");
    } catch {
      continue;
    }
    for (const line of text.trim().split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] === "0A" && inodes.has(cols[9])) ports.push(parseInt(cols[1].split(":")[1], 16));
    }
  }
  return [...new Set(ports)];
}

/** The URL of the user worker's own workerd (wrangler's proxy worker bypassed): the listening port that `probe` accepts. */
export async function userWorkerUrl(pid, probe) {
  if (!pid) throw new Error("the user worker's workerd is not running");
  for (const port of listeningPorts(pid)) {
    const url = `http://127.0.0.1:${port}`;
    try {
      if (await Promise.race([probe(url), sleep(3000).then(() => false)])) return url;
    } catch {}
  }
  throw new Error(`no listening port of workerd ${pid} answers as the worker`);
}
