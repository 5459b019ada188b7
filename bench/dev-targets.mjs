// N-1 and its original JavaScript port, each run several ways (plain Miniflare, `wrangler dev`
// as users run it, wrangler's dev server with the inspector off, …), measured side by side
// against the same mock with requests interleaved. Used by bench/run.mjs (section 6) and
// bench/devpath.mjs (every variant, for finding where the `wrangler dev` path differs).
//
// The ensemble is that of sections 1-2: a panel of 3 answering after 100/200/300 ms and a
// summary after 100 ms, streamed as 200 chunks 2 ms apart (each stamped with its send time).
// Per target: added latency over the direct calls (non-streaming), first streamed content over
// the direct calls, first byte, and the CPU time per request of every process on its path.
import { fork } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { agent, callPhases, cpuMs, median, medianCi, nowNs, percentile, post, sleep, unionLength } from "./lib.mjs";
import { descendants, devProcs, freePort, portConfig, preparePort, startWranglerDev, userWorkerUrl, writeEnvFile, writeLocalConfig } from "./wrangler-dev.mjs";

const ROOT = path.resolve(new URL("..", import.meta.url).pathname);
const TOKEN = "bench-token";
export const PANEL_DELAYS = [100, 200, 300];
export const SUMMARY_DELAY = 100;
export const STREAM_CHUNKS = 200;
export const IDEAL = Math.max(...PANEL_DELAYS) + SUMMARY_DELAY;
const MESSAGES = [
  { role: "system", content: "You are a helpful assistant." },
  { role: "user", content: "Why is the sky blue? Answer in two sentences." },
];
const clientBody = (e, stream) => Buffer.from(JSON.stringify({ model: e, messages: MESSAGES, ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}) }));
const ms = (ns) => Number(ns) / 1e6;

/** What each variant is, for reports. */
export const VARIANT_INFO = {
  "n1-mf": "N-1 in plain Miniflare (as sections 1-5 run it)",
  "port-mf": "the port in plain Miniflare",
  "ref-mf": "the reference worker (bench/reference-worker.mjs) in plain Miniflare",
  "n1-at-mf": "another N-1 build (BENCH_BUILD_DIR, e.g. from bench/build-at.sh) with its own entry, in plain Miniflare",
  "ref-at-mf": "the reference worker of that build's commit (BENCH_BUILD_DIR/reference-worker.mjs) in plain Miniflare",
  "n1-mf-insp": "N-1, Miniflare with an inspector port (workerd --inspector-addr), no client",
  "port-mf-insp": "the port, same",
  "n1-mf-rt": "N-1, Miniflare + inspector client sending Runtime.enable + Network.enable (what wrangler's inspector proxy sends)",
  "port-mf-rt": "the port, same",
  "n1-mf-rt-only": "N-1, Miniflare + inspector client, Runtime.enable only",
  "n1-mf-net-only": "N-1, Miniflare + inspector client, Network.enable only",
  "n1-mf-dbg": "N-1, Miniflare + inspector client, Runtime.enable + Debugger.enable (an open DevTools window)",
  "n1-wd": "N-1 under `wrangler dev` as `npm run dev` runs it",
  "port-wd": "the port under `wrangler dev`",
  "n1-wd-direct": "N-1 under `wrangler dev`, requests straight to the user worker's workerd (proxy worker bypassed)",
  "port-wd-direct": "the port, same",
  "n1-wd-nolog": "N-1 under `wrangler dev`, N1_LOG_REQUESTS=errors",
  "n1-wd-noassets": "N-1 under `wrangler dev`, config without [assets]",
  "n1-wd-nobind": "N-1 under `wrangler dev`, config without [assets], KV and rate limiter",
  "n1-wd-nobuild": "N-1 under `wrangler dev`, config without [build]",
  "n1-wd-noentry": "N-1 under `wrangler dev`, main = build/index.js (the build without worker/entry.mjs)",
  "n1-wd-envnoinsp": "N-1 under `wrangler dev` with VSCODE_INSPECTOR_OPTIONS set (no inspector proxy)",
  "port-wd-envnoinsp": "the port, same",
  "n1-api": "N-1, wrangler's dev server (unstable_startWorker) with the inspector off, `/v1/*` past Miniflare's asset router (`npm run dev`)",
  "n1-api-router": "N-1, inspector off, every path through Miniflare's asset router (as `wrangler dev` routes it)",
  "n1-api-noassets": "N-1, inspector off, config without [assets]",
  "n1-api-norl": "N-1, inspector off, config without the rate limiter",
  "n1-api-nokv": "N-1, inspector off, config without the KV namespace",
  "n1-api-nobind": "N-1, inspector off, config without [assets], KV and rate limiter",
  "n1-api-noentry": "N-1, inspector off, main = build/index.js (without worker/entry.mjs)",
  "n1-api-nolog": "N-1, inspector off, N1_LOG_REQUESTS=errors",
  "n1-api-rwf": "N-1, inspector off, [assets] with run_worker_first = true (no route patterns for the asset router to match)",
  "port-api": "the port, same",
};

/**
 * Start the named variants (see VARIANT_INFO) against `mock` and measure them interleaved,
 * `n` rounds (each: one non-streaming and one streaming request per target). Port variants
 * need `portJs` (the port's worker.js). Returns per-target samples and CPU medians.
 */
export async function compareDev({ mock, names, n, portJs, log = () => {}, warmup = 20, steady = 0 }) {
  if (names.some((x) => x.startsWith("port")) && !(portJs && existsSync(portJs))) throw new Error("port variants need the port's worker.js (BENCH_PORT_JS)");
  const m = (spec, model) => ({ url: `${mock.url}/m/${spec}/v1/chat/completions`, model });
  const ens = {
    lat: { panel: PANEL_DELAYS.map((d, i) => m(`d${d}`, `panel-${i + 1}`)), summary: m(`d${SUMMARY_DELAY}-t-c${STREAM_CHUNKS}-i2`, "summary") },
    zero: { panel: [1, 2, 3].map((i) => m("d0", `panel-${i}`)), summary: m("d0-c10", "summary") },
  };
  const n1Vars = (extra = {}) => ({
    N1_CONFIG: JSON.stringify({
      default_ensemble: "lat",
      ensembles: Object.fromEntries(
        Object.entries(ens).map(([k, e]) => [
          k,
          { panel: e.panel.map((x) => ({ endpoint: x.url, model: x.model, max_retries: 0 })), summary: { endpoint: e.summary.url, model: e.summary.model, max_retries: 0 } },
        ]),
      ),
    }),
    N1_ALLOW_ANONYMOUS: "true",
    N1_ALLOW_INSECURE_UPSTREAMS: "true",
    ...extra,
  });
  const compatibilityDate = readFileSync(path.join(ROOT, "wrangler.toml"), "utf8").match(/^compatibility_date\s*=\s*"([^"]+)"/m)[1];

  const tmp = mkdtempSync(path.join(os.tmpdir(), "n1-dev-"));
  const cleanup = [() => rmSync(tmp, { recursive: true, force: true })];
  let port;
  const portDir = () => {
    if (!port) {
      port = preparePort(portJs, portConfig(ens, TOKEN, "lat"), { compatibilityDate });
      cleanup.push(port.remove);
    }
    return port;
  };
  const builtDir = () => {
    const dir = process.env.BENCH_BUILD_DIR;
    if (!dir || !existsSync(path.resolve(dir, "entry.mjs"))) throw new Error("n1-at-mf and ref-at-mf need BENCH_BUILD_DIR: a build with its entry.mjs (bench/build-at.sh)");
    return dir;
  };
  const auth = (who) => (who === "port" ? { authorization: `Bearer ${TOKEN}` } : {});
  const probe = (who) => async (url) => (await post(agent(), `${url}/v1/chat/completions`, clientBody("zero", false), { headers: auth(who) })).status === 200;
  const forkHost = (script, spec) => {
    const child = fork(new URL(script, import.meta.url), [JSON.stringify(spec)], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit", "ipc"] });
    return new Promise((res, rej) => {
      child.once("message", (r) => res({ ...r, child, close: () => new Promise((ok) => (child.exitCode !== null ? ok() : (child.once("exit", ok), child.send("close")))) }));
      child.once("exit", (c) => rej(new Error(`${script} exited ${c}`)));
    });
  };
  const mf = async (who, { inspector = false, methods = null } = {}) => {
    const built = (file) => path.relative(ROOT, path.resolve(builtDir(), file));
    const refVars = () => ({ REF_CONFIG: JSON.stringify(ens) });
    const workers = {
      n1: () => ({ scriptPath: "worker/entry.mjs", bindings: n1Vars() }),
      "n1-at": () => ({ scriptPath: built("entry.mjs"), bindings: n1Vars() }),
      ref: () => ({ scriptPath: "bench/reference-worker.mjs", bindings: refVars() }),
      "ref-at": () => ({ scriptPath: built("reference-worker.mjs"), bindings: refVars() }),
      port: () => ({ scriptPath: path.relative(ROOT, portDir().script), bindings: {}, modules: false }),
    };
    const spec = { ...workers[who](), inspector, methods };
    const h = await forkHost("./mf-host.mjs", spec);
    return { url: h.url, pid: h.pid, nodePid: h.child.pid, close: h.close };
  };
  // N-1's wrangler.toml variants, next to wrangler.toml (so that its relative paths hold).
  const drop = (s, section) => s.replace(new RegExp(`^\\[+${section}\\]+\\n(?:(?!\\[)[^\\n]*\\n?)*`, "gm"), "");
  // The rate limiter stays, with room for the bench: its 120 requests a minute would turn the
  // warm-up and the steady-state measurement into 429s (the check costs the same either way).
  const roomy = (s) => s.replace(/^simple = \{ limit = \d+/m, "simple = { limit = 1000000");
  const config = (name, transform = (s) => s) => {
    const file = writeLocalConfig(name, (s) => roomy(transform(s)));
    cleanup.push(() => rmSync(file, { force: true }));
    return path.basename(file);
  };
  const envFile = (vars) => writeEnvFile(mkdtempSync(path.join(tmp, "env-")), n1Vars(vars));
  const waitPid = async (procs, w) => {
    for (let i = 0; i < 120 && !procs().pid; i++) await sleep(500); // a reload under way
    const p = procs();
    if (!p.pid) {
      const why = w?.output ? `\nwrangler ${w.exited() === null ? "still running" : `exited (${w.exited()})`}; its output ends:\n${w.output().slice(-4000)}` : "";
      throw new Error(`no single workerd for the user worker; processes:\n${p.tree.join("\n")}${why}`);
    }
    const { tree, ...rest } = p;
    return rest;
  };
  // wrangler runs a custom [build] at start and again once its file watcher is ready; two N-1
  // instances building at once write build/ under each other's bundler (seen to kill one). So
  // each N-1 instance is left alone until no build has run under it for 10 s.
  const buildsDone = async (root) => {
    const building = () => descendants(root).some((p) => /build\.sh|worker-build|wasm-opt|wasm-bindgen|cargo/.test(p.cmd.join(" ")));
    let quiet = Date.now();
    for (const t0 = Date.now(); Date.now() - quiet < 10_000 && Date.now() - t0 < 300_000; ) {
      await sleep(500);
      if (building()) quiet = Date.now();
    }
  };
  const wd = async (who, { vars = {}, env = {}, cfg, direct = false } = {}) => {
    const w =
      who === "n1"
        ? await startWranglerDev({ name: "n1", cwd: ROOT, config: cfg ?? config("wrangler.bench.toml"), args: ["--env-file", envFile(vars)], env, probe: probe(who), log })
        : await startWranglerDev({ name: "port", cwd: portDir().dir, config: "wrangler.toml", env, probe: probe(who), log });
    if (who === "n1") await buildsDone(w.rootPid);
    const procs = w.procs;
    // Every N-1 instance's [build] rewrites build/, which the other instances then reload (a new
    // workerd): the processes (and, bypassing the proxy, the user worker's port) are looked up
    // again before measuring.
    w.refresh = async () => {
      Object.assign(w, await waitPid(procs, w));
      if (direct) w.url = await userWorkerUrl(w.pid, probe(who));
    };
    await w.refresh();
    return w;
  };
  const api = async (who, { cfg, vars = {}, assetRouter = false } = {}) => {
    const p = await freePort();
    const spec =
      who === "n1"
        ? { config: cfg ?? config("wrangler.bench.toml"), envFiles: [envFile(vars)], port: p, assetRouter }
        : { config: path.join(portDir().dir, "wrangler.toml"), port: p };
    const h = await forkHost("./wd-api-host.mjs", spec);
    for (let i = 0; i < 150 && !(await probe(who)(h.url).catch(() => false)); i++) await sleep(200);
    if (who === "n1") await buildsDone(h.child.pid);
    const procs = () => devProcs(h.child.pid, p);
    const w = { url: h.url, close: h.close, refresh: async () => Object.assign(w, await waitPid(procs)) };
    await w.refresh();
    return w;
  };
  const VARIANTS = {
    "n1-mf": () => mf("n1"),
    "port-mf": () => mf("port"),
    "ref-mf": () => mf("ref"),
    "n1-at-mf": () => mf("n1-at"),
    "ref-at-mf": () => mf("ref-at"),
    "n1-mf-insp": () => mf("n1", { inspector: true }),
    "port-mf-insp": () => mf("port", { inspector: true }),
    "n1-mf-rt": () => mf("n1", { inspector: true, methods: ["Runtime.enable", "Network.enable"] }),
    "port-mf-rt": () => mf("port", { inspector: true, methods: ["Runtime.enable", "Network.enable"] }),
    "n1-mf-rt-only": () => mf("n1", { inspector: true, methods: ["Runtime.enable"] }),
    "n1-mf-net-only": () => mf("n1", { inspector: true, methods: ["Network.enable"] }),
    "n1-mf-dbg": () => mf("n1", { inspector: true, methods: ["Runtime.enable", "Debugger.enable"] }),
    "n1-wd": () => wd("n1"),
    "port-wd": () => wd("port"),
    "n1-wd-direct": () => wd("n1", { direct: true }),
    "port-wd-direct": () => wd("port", { direct: true }),
    "n1-wd-nolog": () => wd("n1", { vars: { N1_LOG_REQUESTS: "errors" } }),
    "n1-wd-noassets": () => wd("n1", { cfg: config("wrangler.bench-noassets.toml", (s) => drop(s, "assets")) }),
    "n1-wd-nobind": () => wd("n1", { cfg: config("wrangler.bench-nobind.toml", (s) => drop(drop(drop(s, "assets"), "kv_namespaces"), "ratelimits")) }),
    "n1-wd-nobuild": () => wd("n1", { cfg: config("wrangler.bench-nobuild.toml", (s) => drop(s, "build")) }),
    "n1-wd-noentry": () => wd("n1", { cfg: config("wrangler.bench-noentry.toml", (s) => s.replace(/^main = .*$/m, 'main = "build/index.js"')) }),
    "n1-wd-envnoinsp": () => wd("n1", { env: { VSCODE_INSPECTOR_OPTIONS: "{}" } }),
    "port-wd-envnoinsp": () => wd("port", { env: { VSCODE_INSPECTOR_OPTIONS: "{}" } }),
    "n1-api": () => api("n1"),
    "n1-api-router": () => api("n1", { assetRouter: true }),
    "n1-api-noassets": () => api("n1", { cfg: config("wrangler.bench-noassets.toml", (s) => drop(s, "assets")) }),
    "n1-api-norl": () => api("n1", { cfg: config("wrangler.bench-norl.toml", (s) => drop(s, "ratelimits")) }),
    "n1-api-nokv": () => api("n1", { cfg: config("wrangler.bench-nokv.toml", (s) => drop(s, "kv_namespaces")) }),
    "n1-api-nobind": () => api("n1", { cfg: config("wrangler.bench-nobind.toml", (s) => drop(drop(drop(s, "assets"), "kv_namespaces"), "ratelimits")) }),
    "n1-api-noentry": () => api("n1", { cfg: config("wrangler.bench-noentry.toml", (s) => s.replace(/^main = .*$/m, 'main = "build/index.js"')) }),
    "n1-api-nolog": () => api("n1", { vars: { N1_LOG_REQUESTS: "errors" } }),
    "n1-api-rwf": () => api("n1", { cfg: config("wrangler.bench-rwf.toml", (s) => s.replace(/^run_worker_first = .*$/m, "run_worker_first = true")) }),
    "port-api": () => api("port"),
  };

  const targets = [];
  try {
    for (const name of names) {
      if (!VARIANTS[name]) throw new Error(`unknown variant ${name}`);
      log(`starting ${name}: ${VARIANT_INFO[name]}`);
      const w = await VARIANTS[name]();
      const a = agent();
      const headers = auth(name.split("-")[0]);
      const req = (e, stream, o = {}) => post(a, `${w.url}/v1/chat/completions`, clientBody(e, stream), { ...o, headers });
      targets.push({
        name,
        w,
        a,
        // A refused connection means wrangler restarted the worker's workerd (a reload): find it again, once.
        // A reset on a kept-alive connection (the server closed it while idle: between two requests of a
        // target the others run for seconds) is retried at once, on a new connection.
        req: (e, stream, o) =>
          req(e, stream, o).catch(async (err) => {
            if (err.code === "ECONNRESET" || err.code === "EPIPE") return req(e, stream, o);
            if (err.code !== "ECONNREFUSED" || !w.refresh) throw err;
            log(`${name}: connection refused, looking the worker up again`);
            await sleep(2000);
            await w.refresh();
            return req(e, stream, o);
          }),
      });
    }
    const refresh = async () => {
      for (const t of targets) if (t.w.refresh) await t.w.refresh();
    };
    await refresh();
    // The direct client: the same calls to the mock, made by the bench itself.
    const da = agent();
    const direct = {
      name: "direct",
      async req(e, stream, o = {}) {
        const x = ens[e];
        const t0 = nowNs();
        await Promise.all(x.panel.map((p) => post(da, p.url, Buffer.from(JSON.stringify({ model: p.model, messages: MESSAGES, stream: false })))));
        const r = await post(da, x.summary.url, Buffer.from(JSON.stringify({ model: x.summary.model, messages: MESSAGES, stream })), o);
        return { ...r, t0 };
      },
    };
    const all = [direct, ...targets];
    const warmUp = async (rounds) => {
      for (let i = 0; i < rounds; i++) for (const t of all) for (const s of [false, true]) await t.req("zero", s);
    };
    log(`warm-up (${warmup} rounds)`);
    await warmUp(warmup);
    await refresh();
    const pids = (t) => (t.w ? { user: t.w.pid, proxy: t.w.proxyPid, node: t.w.nodePid } : {});
    // One measurement: n interleaved rounds.
    const measure = async () => {
      const res = Object.fromEntries(all.map((t) => [t.name, { json: [], tz: [], first: [], ttfb: [], before: [], between: [], after: [], panel: [], sBefore: [], sBetween: [], sRelay: [], errors: 0, failures: [], cpu: { json: {}, stream: {} } }]));
      // A failed request: counted, and the first few kept (status and the body's end, where an
      // error event would be), so the report can say what went wrong.
      const failed = (t, round, mode, r) => {
        const o = res[t.name];
        o.errors++;
        if (o.failures.length >= 3) return;
        const x = { round, mode, status: r.status, end: r.body.toString().replace(/\s+/g, " ").slice(-300) };
        // Under `wrangler dev`: what wrangler last said, and whether the user worker's workerd is
        // still the one measured (its proxy answers 503 "restarted" to any failed fetch of a POST, reload or not).
        if (t.w?.output) {
          x.wrangler = t.w.output().trim().split("\n").filter((l) => l.trim()).slice(-8).join(" | ").slice(-1200);
          x.userPid = { measured: t.w.pid, now: t.w.procs?.().pid ?? null };
        }
        o.failures.push(x);
      };
      // The CPU time of each process from one request of a target to its next request goes to the
      // first request's mode (the worker's after-response work included).
      const last = new Map();
      const account = (t, mode) => {
        const now = Object.fromEntries(Object.entries(pids(t)).map(([k, p]) => [k, cpuMs(p)]));
        const prev = last.get(t.name);
        if (prev) for (const k of Object.keys(now)) (res[t.name].cpu[prev.mode][k] ??= []).push(now[k] - prev.cpu[k]);
        last.set(t.name, { mode, cpu: now });
      };
      log(`measuring: ${n} rounds over ${all.length} targets`);
      // The mock records when each upstream call arrived and ended: where the time goes in a
      // non-streaming request (before the first call, between the last panel answer and the
      // summary call, after the summary's answer).
      await mock.call("log", { on: true });
      for (let i = 0; i < n; i++) {
        const order = i % 2 ? [...all].reverse() : all;
        for (const t of order) {
          account(t, "json");
          const r = await t.req("lat", false);
          let ok = r.status === 200;
          try {
            ok &&= typeof JSON.parse(r.body.toString()).choices[0].message.content === "string";
          } catch {
            ok = false;
          }
          if (!ok) failed(t, i, "json", r);
          res[t.name].json.push(ms(r.end - r.t0) - IDEAL);
          const calls = await mock.take(PANEL_DELAYS.length + 1);
          // TensorZero-style overhead: the wall time outside every upstream call (the mock's own
          // timer jitter falls inside the calls, so this is the worker's time alone). null when
          // the calls were not all seen (kept, so that rounds stay aligned across targets).
          res[t.name].tz.push(calls.length === PANEL_DELAYS.length + 1 ? ms(r.end - r.t0) - unionLength(calls) : null);
          if (calls.length === PANEL_DELAYS.length + 1) {
            const w = callPhases(calls, ms(r.t0), ms(r.end));
            res[t.name].before.push(w.before);
            res[t.name].between.push(w.between);
            res[t.name].after.push(w.after);
            // How much later than the slowest panel member's delay its answer came, from the first call.
            res[t.name].panel.push(w.panelSpan - Math.max(...PANEL_DELAYS));
          }
          await sleep(5);
        }
        for (const t of order) {
          account(t, "stream");
          const r = await t.req("lat", true, { stamps: true });
          if (r.status !== 200 || r.chunks.length !== STREAM_CHUNKS) failed(t, i, "stream", r);
          // null when no content came (kept, so that rounds stay aligned across targets).
          res[t.name].first.push(r.chunks.length ? ms(r.chunks[0][1] - r.t0) - IDEAL : null);
          res[t.name].ttfb.push(ms(r.first - r.t0));
          // Where the time to the first content goes: before the first call, between the last
          // panel answer and the summary call, and the first chunk's relay (its arrival − its send).
          const calls = await mock.take(PANEL_DELAYS.length + 1);
          if (calls.length === PANEL_DELAYS.length + 1 && r.chunks.length) {
            const w = callPhases(calls, ms(r.t0), ms(r.end));
            res[t.name].sBefore.push(w.before);
            res[t.name].sBetween.push(w.between);
            res[t.name].sRelay.push(ms(r.chunks[0][1] - r.chunks[0][0]));
          }
          await sleep(5);
        }
        if ((i + 1) % 10 === 0) log(`round ${i + 1}/${n}`);
      }
      await mock.call("log", { on: false });
      await sleep(200);
      for (const t of all) account(t, "json");
      const st = (v) => ({ p50: percentile(v, 50), p95: percentile(v, 95), n: v.length });
      const out = { n, ideal: IDEAL, names: all.map((t) => t.name), by: {} };
      for (const t of all) {
        const o = res[t.name];
        const cpu = (mode) => Object.fromEntries(Object.entries(o.cpu[mode]).map(([k, v]) => [k, median(v)]));
        out.by[t.name] = {
          json: st(o.json),
          tz: st(o.tz.filter((v) => v !== null)),
          first: st(o.first.filter((v) => v !== null)),
          ttfb: st(o.ttfb),
          where: { before: median(o.before), panel: median(o.panel), between: median(o.between), after: median(o.after) },
          streamWhere: { before: median(o.sBefore), between: median(o.sBetween), relay: median(o.sRelay) },
          errors: o.errors,
          failures: o.failures,
          cpu: { json: cpu("json"), stream: cpu("stream") },
          // Each round's added time (ms over the ideal; `first`: null when no content came), for paired comparisons.
          rounds: { json: o.json.map(r2), tz: o.tz.map(r2), first: o.first.map(r2) },
        };
      }
      return out;
    };
    // Early: a fresh session's first requests. V8 runs N-1's Wasm in its baseline tier at first and
    // compiles the hot functions with its optimizing tier over the first few hundred requests (in a
    // background thread); JavaScript gets there sooner. So each target is measured twice: after the
    // short warm-up, and again after `steady` more rounds of quick requests.
    const out = await measure();
    if (steady > 0) {
      log(`warm-up to a steady state (${steady} more rounds)`);
      await warmUp(steady);
      out.steady = { ...(await measure()), after: 2 * (warmup + steady + n) };
    }
    out.after = 2 * warmup;
    return out;
  } finally {
    for (const t of targets) await t.w.close().catch(() => {});
    for (const c of cleanup.reverse()) c();
  }
}

// Rounded to 0.01; null (a round without that figure) stays null.
const r2 = (v) => (v === null ? null : Math.round(v * 100) / 100);

/** One kept failure of target `name` (from `failures` of a compareDev result), as a line. */
export const failureLine = (name, x) =>
  `${name}, round ${x.round + 1}, ${x.mode}: HTTP ${x.status}, body ending \`${x.end.replaceAll("`", "'")}\`` +
  (x.wrangler === undefined ? "" : `; user workerd ${x.userPid.measured} → ${x.userPid.now}; wrangler's output ended: \`${x.wrangler.replaceAll("`", "'")}\``);

/** Round by round, `a`'s time − `b`'s (their requests were adjacent in time, so slow spells of the
 * machine cancel out): the median difference, its quartiles, a 95 % confidence interval for the
 * median (`ci`, sign test), and in how many rounds `a` was faster. */
export function paired(R, a, b, mode) {
  return pairedOver([R], a, b, mode);
}

/** The same over the rounds of several compareDev results (a session's early and steady phases). */
export function pairedOver(Rs, a, b, mode) {
  const d = [];
  for (const R of Rs) {
    const x = R?.by[a]?.rounds?.[mode];
    const y = R?.by[b]?.rounds?.[mode];
    if (!x || !y || x.length !== y.length) return null;
    x.forEach((v, i) => v !== null && y[i] !== null && d.push(v - y[i]));
  }
  return spread(d);
}

/** Differences summed up: median, quartiles, the median's 95 % CI, how many below zero; null when none. */
function spread(d) {
  if (!d.length) return null;
  return { median: percentile(d, 50), q1: percentile(d, 25), q3: percentile(d, 75), ci: medianCi(d), faster: d.filter((v) => v < 0).length, n: d.length };
}

/** Round by round, (a − b) − (c − d): e.g. this code's cost over its reference worker against
 * another build's over its own, each round's four requests adjacent in time. As `paired`. */
export function pairedDiff(R, [a, b, c, d], mode) {
  const v = (n) => R?.by[n]?.rounds?.[mode];
  const [w, x, y, z] = [a, b, c, d].map(v);
  if (![w, x, y, z].every((r) => r && r.length === w.length)) return null;
  const diff = [];
  w.forEach((_, i) => [w, x, y, z].every((r) => r[i] !== null) && diff.push(w[i] - x[i] - (y[i] - z[i])));
  return spread(diff);
}

/** "over direct" figures of a compareDev result: target − direct at p50 and p95. */
export function overDirect(R, name) {
  const d = R.by.direct;
  const o = R.by[name];
  return {
    json: { p50: o.json.p50 - d.json.p50, p95: o.json.p95 - d.json.p95 },
    first: { p50: o.first.p50 - d.first.p50, p95: o.first.p95 - d.first.p95 },
  };
}
