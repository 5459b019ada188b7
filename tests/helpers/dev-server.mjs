// `npm run dev` as a user runs it (wrangler dev, with its proxy in front of the
// worker), in a scratch copy of the project: the copy has its own .dev.vars,
// wrangler.local.toml and .wrangler state (local KV), so a developer's own
// files and a dev server they run in the checkout are never touched. The copy
// links the checkout's sources, scripts, node_modules and build/ (built by
// scripts/test.sh, so scripts/build.sh finds it up to date and skips).
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export const ROOT = path.resolve(new URL("../..", import.meta.url).pathname);
const LINKED = ["node_modules", "src", "worker", "public", "scripts", "build", "target", "Cargo.toml", "Cargo.lock", "package.json", "package-lock.json", "wrangler.toml", ".dev.vars.example", "README.md"];

/** A scratch project directory; `remove()` deletes it. */
export function scratchProject() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "n1-dev-"));
  for (const name of LINKED) {
    if (fs.existsSync(path.join(ROOT, name))) fs.symlinkSync(path.join(ROOT, name), path.join(dir, name));
  }
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** The dotenv text of a vars file (`.dev.vars` or an `--env-file`) for these vars. */
export function varsFile(vars) {
  return Object.entries(vars)
    .map(([k, v]) => {
      const s = typeof v === "string" ? v : JSON.stringify(v);
      if (s.includes("'")) throw new Error(`varsFile: ${k} contains a single quote`);
      return `${k}='${s}'`;
    })
    .join("\n") + "\n";
}

export async function freePort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/** Whether something listens on 127.0.0.1:port. */
export function portInUse(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

/** pid -> { ppid, pgid, cmd } for every process, from /proc. */
function processes() {
  const out = new Map();
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, "utf8");
      const [, ppid, pgid] = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // state ppid pgrp
      const cmd = fs.readFileSync(`/proc/${e}/cmdline`, "utf8").split("\0").join(" ").trim();
      out.set(Number(e), { ppid: Number(ppid), pgid: Number(pgid), cmd });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** `root` and every process below it. */
function tree(root) {
  const procs = processes();
  const found = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, p] of procs) {
      if (!found.has(pid) && found.has(p.ppid)) found.add(pid), (grew = true);
    }
  }
  return [...found].filter((pid) => procs.has(pid)).map((pid) => ({ pid, ...procs.get(pid) }));
}

/**
 * Runs `command` (a shell command line, e.g. "npm run dev -- --port 9000") in
 * `dir` in a process group of its own, and waits until `GET /v1/models` on
 * `port` answers 200. `stop()` ends the whole group and checks that nothing
 * of it (npm, the dev script, wrangler, workerd) is left.
 */
export async function startDev({ dir, command, port, env = {}, readyMs = 240_000 }) {
  const child = spawn("bash", ["-c", command], { cwd: dir, detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  let exited = null;
  const exit = new Promise((r) => child.on("exit", (code, signal) => r((exited = { code, signal }))));
  const url = `http://127.0.0.1:${port}`;
  const server = {
    url,
    pid: child.pid,
    output: () => output,
    /** The processes of the dev server (npm, the scripts, wrangler, workerd), with their command lines. */
    processes: () => tree(child.pid),
    async stop() {
      if (exited) return;
      const ours = tree(child.pid);
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {}
      const deadline = Date.now() + 20_000;
      let left;
      for (;;) {
        const procs = processes();
        left = ours.filter((p) => procs.has(p.pid) && procs.get(p.pid).cmd === p.cmd);
        left.push(...[...procs].filter(([pid, p]) => p.pgid === child.pid && !left.some((l) => l.pid === pid)).map(([pid, p]) => ({ pid, ...p })));
        if (!left.length || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      if (left.length) {
        for (const p of left) try { process.kill(p.pid, "SIGKILL"); } catch {}
        throw new Error(`processes left 20 s after SIGTERM to the dev server's group:\n${left.map((p) => `${p.pid} ${p.cmd}`).join("\n")}`);
      }
      await exit;
    },
  };
  const deadline = Date.now() + readyMs;
  for (;;) {
    if (exited) throw new Error(`\`${command}\` exited (${JSON.stringify(exited)}) before serving:\n${output}`);
    try {
      const r = await fetch(`${url}/v1/models`, { signal: AbortSignal.timeout(2000) });
      await r.arrayBuffer();
      if (r.status === 200) return server;
    } catch {}
    if (Date.now() > deadline) {
      await server.stop().catch(() => {});
      throw new Error(`\`${command}\` did not serve ${url}/v1/models within ${readyMs} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Runs a shell command line in `dir`; resolves with its exit code and output. On timeout the
 * whole process group goes (the command's own children too, e.g. the workerd a bench starts). */
export function sh(dir, command, { env = {}, timeoutMs = 120_000 } = {}) {
  return new Promise((resolve) => {
    const child = spawn("bash", ["-c", command], { cwd: dir, detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => process.kill(-child.pid, "SIGKILL"), timeoutMs);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** The tools directory's Python (scripts/setup.sh --tests installs the openai package there). */
export function venvPython() {
  const out = execFileSync("bash", ["-c", "source scripts/env.sh && echo $N1_PY_VENV"], { cwd: ROOT, encoding: "utf8" }).trim();
  return path.join(out, "bin", "python");
}
