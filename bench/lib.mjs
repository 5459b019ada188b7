// Helpers for bench/run.mjs: the mock process, workers in workerd, an HTTP client
// with timestamps, per-process CPU time, statistics.
import http from "node:http";
import { fork } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { Miniflare, NoOpLog } from "miniflare";

/** CLOCK_MONOTONIC in ns (the mock stamps with the same clock). */
export const nowNs = () => process.hrtime.bigint();
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- mock upstream

export async function startMock() {
  const child = fork(new URL("./mock.mjs", import.meta.url), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const ready = await new Promise((resolve, reject) => {
    child.once("message", resolve);
    child.once("exit", (c) => reject(new Error(`mock exited with ${c}`)));
  });
  let seq = 0;
  const pending = new Map();
  child.on("message", (m) => {
    const p = pending.get(m.id);
    if (p) {
      pending.delete(m.id);
      p(m);
    }
  });
  const call = (cmd, extra = {}) =>
    new Promise((resolve) => {
      const id = ++seq;
      pending.set(id, resolve);
      child.send({ id, cmd, ...extra });
    });
  return {
    url: `http://127.0.0.1:${ready.port}`,
    pid: ready.pid,
    call,
    /** Upstream call intervals [start, end] in ms (monotonic) recorded since the last take. */
    async take(min = 0) {
      for (let i = 0; i < 50; i++) {
        const { log } = await call("take-peek");
        if (log >= min) break;
        await sleep(2);
      }
      return (await call("take")).log.map(([a, b, done]) => ({ start: a / 1e6, end: b / 1e6, done }));
    },
    close() {
      return new Promise((resolve) => {
        child.once("exit", resolve);
        child.send({ cmd: "exit" });
      });
    },
  };
}

// ---------------------------------------------------------------- workers in workerd

const toml = readFileSync(new URL("../wrangler.toml", import.meta.url), "utf8");
export const COMPAT_DATE = toml.match(/^compatibility_date\s*=\s*"([^"]+)"/m)[1];
const COMPAT_FLAGS = JSON.parse(toml.match(/^compatibility_flags\s*=\s*(\[.*\])/m)?.[1] ?? "[]");

/** workerd processes that are children of this process. */
function workerdChildren() {
  const out = new Set();
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === process.pid && comm.startsWith("workerd")) out.add(Number(p));
    } catch {
      // raced with an exiting process
    }
  }
  return out;
}

/**
 * Start a module worker in its own workerd (one process per worker, so its CPU can be
 * read on its own). `scriptPath` is the release build (N-1) or the reference worker;
 * `durableObjects` as Miniflare takes them (bench/budget.mjs binds N-1's budget object).
 */
export async function startWorkerd({ scriptPath, bindings, inspectorPort, modules = true, durableObjects }) {
  const before = workerdChildren();
  const t0 = nowNs();
  const mf = new Miniflare({
    // `modules: false`: a service-worker script (addEventListener("fetch")).
    ...(modules
      ? {
          modules: true,
          scriptPath,
          modulesRoot: ".",
          modulesRules: [
            { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
            { type: "CompiledWasm", include: ["**/*.wasm"] },
          ],
        }
      : { scriptPath }),
    ...(inspectorPort !== undefined ? { inspectorPort } : {}),
    compatibilityDate: COMPAT_DATE,
    compatibilityFlags: COMPAT_FLAGS,
    bindings,
    ...(durableObjects ? { durableObjects } : {}),
    host: "127.0.0.1",
    port: 0,
    cf: false,
    log: new NoOpLog(),
    handleRuntimeStdio(stdout, stderr) {
      // The worker's log lines are read and dropped (their cost is the worker's).
      stdout.resume();
      stderr.resume();
    },
  });
  const url = (await mf.ready).href.replace(/\/$/, "");
  const tReady = nowNs();
  const pid = [...workerdChildren()].find((p) => !before.has(p));
  return { mf, url, pid, t0, tReady, close: () => mf.dispose() };
}

// ---------------------------------------------------------------- ensembles of compare.mjs and profile.mjs

/** Panel of 3 + summary on the mock: zero delay, or 1 KB / 32 KB / 256 KB answers; `spaced`: 200 chunks 2 ms apart; `timed`: answers 100-300 ms late; `p6spaced`: a panel of 6, each answer 100 chunks 2 ms apart. */
export function benchEnsembles(mockUrl) {
  const m = (spec, name) => ({ url: `${mockUrl}/m/${spec}/v1/chat/completions`, model: name });
  const n3 = (spec) => [1, 2, 3].map((i) => m(spec, `panel-${i}`));
  return {
    zero: { panel: n3("d0"), summary: m("d0-c10", "summary") },
    a1024: { panel: n3("s1024"), summary: m("s1024", "summary") },
    a32768: { panel: n3("s32768"), summary: m("s32768", "summary") },
    a262144: { panel: n3("s262144"), summary: m("s262144", "summary") },
    spaced: { panel: n3("d0"), summary: m("d0-s12800-c200-i2", "summary") },
    // Sections 1 and 6's timing: panel answers at 100/200/300 ms, the summary's 100 ms later.
    timed: { panel: [100, 200, 300].map((d, i) => m(`d${d}`, `panel-${i + 1}`)), summary: m("d100", "summary") },
    // ~600 wake-ups per request (a panel member's stream wakes it once per chunk): per-wake-up costs.
    p6spaced: { panel: [1, 2, 3, 4, 5, 6].map((i) => m("d0-s6400-c100-i2", `panel-${i}`)), summary: m("d0", "summary") },
  };
}

/** N-1's bindings for those ensembles (the reference worker takes them as REF_CONFIG). */
export function n1Bindings(ens, extra = {}) {
  const model = (x) => ({ endpoint: x.url, model: x.model, max_retries: 0 });
  const config = { ensembles: Object.fromEntries(Object.entries(ens).map(([k, e]) => [k, { panel: e.panel.map(model), summary: model(e.summary) }])) };
  return { N1_CONFIG: JSON.stringify(config), N1_ALLOW_ANONYMOUS: "true", N1_ALLOW_INSECURE_UPSTREAMS: "true", ...extra };
}

// ---------------------------------------------------------------- CPU time

/** CPU time of a process (all its threads) in ms, from /proc/<pid>/task/<tid>/schedstat (ns). */
export function cpuMs(pid) {
  if (!pid) return NaN;
  let ns = 0;
  let tasks;
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return NaN;
  }
  for (const t of tasks) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      // thread exited
    }
  }
  return ns / 1e6;
}

/** Node's own CPU (this process) in ms. */
export function selfCpuMs() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

// ---------------------------------------------------------------- HTTP client

export function agent() {
  return new http.Agent({ keepAlive: true, maxSockets: 64 });
}

const STAMP = /T(\d{20}) /g;

/**
 * POST a JSON body; resolves with timestamps (ns, monotonic): t0 (request started),
 * first (first body byte), end (last byte), and for streams with stamped chunks,
 * `chunks`: [sentNs, arrivedNs] of every content chunk carrying a mock send stamp.
 */
export function post(agent, url, body, { stamps = false, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const t0 = nowNs();
    const req = http.request(
      {
        agent,
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: "POST",
        headers: { "content-type": "application/json", "content-length": body.length, ...headers },
      },
      (res) => {
        let first = null;
        const parts = [];
        const chunks = [];
        let text = "";
        let scanned = 0;
        res.on("data", (d) => {
          const t = nowNs();
          if (first === null) first = t;
          parts.push(d);
          if (stamps) {
            text += d.toString("latin1");
            STAMP.lastIndex = scanned;
            let m;
            while ((m = STAMP.exec(text))) {
              chunks.push([BigInt(m[1]), t]);
              scanned = STAMP.lastIndex;
            }
            scanned = Math.max(scanned, text.length - 24);
          }
        });
        res.on("end", () => {
          const buf = Buffer.concat(parts);
          resolve({ status: res.statusCode, t0, first, end: nowNs(), body: buf, chunks });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

// ---------------------------------------------------------------- statistics

export function percentile(values, p) {
  if (!values.length) return NaN;
  const s = Float64Array.from(values).sort();
  const idx = (p / 100) * (s.length - 1);
  const lo = Math.floor(idx);
  const hi = Math.ceil(idx);
  return s[lo] + (s[hi] - s[lo]) * (idx - lo);
}

export function stats(values) {
  return {
    n: values.length,
    p50: percentile(values, 50),
    p95: percentile(values, 95),
    p99: percentile(values, 99),
    min: values.length ? Math.min(...values) : NaN,
    max: values.length ? Math.max(...values) : NaN,
  };
}

export const median = (values) => percentile(values, 50);

/**
 * A distribution-free 95 % confidence interval for the median of `values`: its k-th smallest
 * and k-th largest value, k the largest with P(Binomial(n, ½) ≤ k − 1) ≤ 2.5 % (the sign
 * test's interval; no assumption about the shape of the distribution).
 * [NaN, NaN] below 6 values, where no such interval exists.
 */
export function medianCi(values) {
  const s = Float64Array.from(values).sort();
  const n = s.length;
  let cdf = 0;
  let term = 2 ** -n; // P(X = 0)
  let k = 0;
  while (k < n && cdf + term <= 0.025) {
    cdf += term;
    term *= (n - k) / (k + 1);
    k++;
  }
  return k === 0 ? [NaN, NaN] : [s[k - 1], s[n - k]];
}

/** Where a request's time went around its upstream calls (ms, on the mock's clock; `t0` and `end`
 * the request's start and end): before the first call, between the last panel answer and the
 * summary call (the call that started last), after the summary's answer, and the panel's span
 * from its first call to its last answer. */
export function callPhases(calls, t0, end) {
  const s = [...calls].sort((a, b) => a.start - b.start);
  const summary = s.at(-1);
  const lastAnswer = Math.max(...s.slice(0, -1).map((c) => c.end));
  return { before: s[0].start - t0, between: summary.start - lastAnswer, after: end - summary.end, panelSpan: lastAnswer - s[0].start };
}

/** Total length of the union of [start, end] intervals. */
export function unionLength(intervals) {
  const s = [...intervals].sort((a, b) => a.start - b.start);
  let total = 0;
  let cur = null;
  for (const iv of s) {
    if (!cur || iv.start > cur.end) {
      if (cur) total += cur.end - cur.start;
      cur = { start: iv.start, end: iv.end };
    } else if (iv.end > cur.end) cur.end = iv.end;
  }
  if (cur) total += cur.end - cur.start;
  return total;
}
