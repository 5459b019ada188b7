// `npm run bench`: N-1's cost per request, measured three ways side by side in one run:
//   direct    the bench client calls the mock itself (the floor of the measurement),
//   reference a minimal JavaScript Worker doing the same fan-out + relay (bench/reference-worker.mjs),
//             in its own workerd through Miniflare (the runtime floor),
//   n1        the worker as deployed (worker/entry.mjs around build/) in its own workerd through Miniflare.
// Our own cost is n1 − reference. Section 6 (issue 12) runs N-1 under `wrangler dev` as users run
// it next to N-1's original JavaScript port (BENCH_PORT_JS=/path/to/cloudfare_worker/worker.js of
// leezhuuuuu/N-1; skipped with a note when unset), see bench/dev-targets.mjs.
// Writes BENCHMARKS.md (and bench/last-run.json).
// BENCH_QUICK=1: fewer samples (about 2 minutes, 5 with section 6). BENCH_ONLY=latency,stream,throughput,scale,size,cold,wranglerdev
// runs a subset (the report then says so). BENCH_OUT=path changes the report's path.
// BENCH_NO_BUILD=1 skips the build when the size section (whose dry run builds) is not run.
// BENCH_REPORT_ONLY=1 rewrites the report from bench/last-run.json without measuring.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import autocannon from "autocannon";
import { agent, cpuMs, median, nowNs, percentile, post, selfCpuMs, sleep, startMock, startWorkerd, stats, unionLength } from "./lib.mjs";
import { compareDev, overDirect, STREAM_CHUNKS as DEV_CHUNKS } from "./dev-targets.mjs";

const ROOT = path.resolve(new URL("..", import.meta.url).pathname);
process.chdir(ROOT);
const QUICK = process.env.BENCH_QUICK === "1";
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(",")) : null;
const OUT = process.env.BENCH_OUT ?? "BENCHMARKS.md";
const on = (section) => !ONLY || ONLY.has(section);

const P = QUICK
  ? { latencyN: 20, streamN: 6, tputSeconds: 2, tputRounds: 1, scaleN: 10, coldN: 2, warmup: 20, devN: 8 }
  : { latencyN: 100, streamN: 25, tputSeconds: 3, tputRounds: 3, scaleN: 30, coldN: 5, warmup: 60, devN: 30 };
const PORT_JS = process.env.BENCH_PORT_JS;
// Section 6: each worker in plain Miniflare, under `wrangler dev` as users run it, and under
// wrangler's dev server with the inspector off (how `npm run dev` runs N-1).
// n1-api-nokv: the same without the KV binding, i.e. without N-1's KV read on the request path
// (it re-reads its config when its copy is over 5 s old: here, on every request).
const DEV_VARIANTS = ["n1-mf", "port-mf", "n1-wd", "port-wd", "n1-api", "port-api", "n1-api-nokv"];

const PANEL_DELAYS = [100, 200, 300];
const SUMMARY_DELAY = 100;
const STREAM_CHUNKS = 200;
const CHUNK_INTERVAL = 2; // ms between the summary's content chunks in the streaming test
const SCALE_DELAY = 20; // ms per panel member and for the summary in the panel-size test
const PANEL_SIZES = [1, 3, 6, 12];
const ANSWER_SIZES = [1024, 32 * 1024, 256 * 1024];
const CONCURRENCY = [1, 16, 64];
const MAX_IN_FLIGHT = 6; // N-1's (and Cloudflare's) cap of open upstream calls per request

const log = (...a) => console.error("[bench]", ...a);
const ms = (ns) => Number(ns) / 1e6;
const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");

// ---------------------------------------------------------------- the ensembles

function ensembles(mockUrl) {
  const m = (spec, name) => ({ url: `${mockUrl}/m/${spec}/v1/chat/completions`, model: name ?? `m-${spec}` });
  const n = (k, spec) => Array.from({ length: k }, (_, i) => m(spec, `panel-${i + 1}`));
  const e = {
    // 1, 2: fixed delays; the summary streams 200 stamped chunks 2 ms apart (one short answer when not streaming)
    lat: { panel: PANEL_DELAYS.map((d, i) => m(`d${d}`, `panel-${i + 1}`)), summary: m(`d${SUMMARY_DELAY}-t-c${STREAM_CHUNKS}-i${CHUNK_INTERVAL}`, "summary") },
    // 3: zero delay, small answers; the summary stream is 10 content chunks in one write
    zero: { panel: n(3, "d0"), summary: m("d0-c10", "summary") },
  };
  for (const k of PANEL_SIZES) e[`p${k}`] = { panel: n(k, `d${SCALE_DELAY}`), summary: m(`d${SCALE_DELAY}`, "summary") };
  for (const s of ANSWER_SIZES) e[`a${s}`] = { panel: n(3, `s${s}`), summary: m(`s${s}`, "summary") };
  return e;
}

function n1Config(ens) {
  const model = (x) => ({ endpoint: x.url, model: x.model, max_retries: 0 });
  return {
    default_ensemble: "lat",
    ensembles: Object.fromEntries(Object.entries(ens).map(([k, e]) => [k, { panel: e.panel.map(model), summary: model(e.summary) }])),
  };
}

const MESSAGES = [
  { role: "system", content: "You are a helpful assistant." },
  { role: "user", content: "Why is the sky blue? Answer in two sentences." },
];

function clientBody(ensName, stream) {
  return Buffer.from(
    JSON.stringify({ model: ensName, messages: MESSAGES, ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}) }),
  );
}

// ---------------------------------------------------------------- targets

/** The bench client doing the ensemble itself against the mock: the floor. */
function directTarget(ens) {
  const a = agent();
  const body = (model, stream) => Buffer.from(JSON.stringify({ model, messages: MESSAGES, stream }));
  return {
    name: "direct",
    agent: a,
    async request(ensName, stream, opts = {}) {
      const e = ens[ensName];
      const t0 = nowNs();
      let next = 0;
      const answers = [];
      const worker = async () => {
        while (next < e.panel.length) {
          const m = e.panel[next++];
          const r = await post(a, m.url, body(m.model, false));
          answers.push(r.body.length);
        }
      };
      await Promise.all(Array.from({ length: Math.min(MAX_IN_FLIGHT, e.panel.length) }, worker));
      const r = await post(a, e.summary.url, body(e.summary.model, stream), opts);
      return { ...r, t0, summaryT0: r.t0 };
    },
  };
}

function workerTarget(name, w) {
  const a = agent();
  const url = `${w.url}/v1/chat/completions`;
  return {
    name,
    agent: a,
    url,
    pid: w.pid,
    request(ensName, stream, opts = {}) {
      return post(a, url, clientBody(ensName, stream), opts);
    },
  };
}

/** Whether a reply is a complete, error-free answer. */
function replyOk(r, stream) {
  if (r.status !== 200) return false;
  const text = r.body.toString("utf8");
  if (stream) return text.includes("data: [DONE]") && !text.includes('"error"');
  try {
    const j = JSON.parse(text);
    return typeof j.choices?.[0]?.message?.content === "string";
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- sections

const errors = {}; // target -> count, across every section
const bad = (t) => (errors[t.name] = (errors[t.name] ?? 0) + 1);

async function warm(targets) {
  for (let i = 0; i < P.warmup; i++) {
    for (const t of targets) {
      for (const [ens, stream] of [["zero", false], ["zero", true], ["a1024", false], ["a1024", true]]) {
        const r = await t.request(ens, stream);
        if (!replyOk(r, stream)) throw new Error(`${t.name}: bad reply during warm-up: ${r.status} ${r.body.toString().slice(0, 300)}`);
      }
    }
  }
}

async function latency(targets, mock) {
  const ideal = Math.max(...PANEL_DELAYS) + SUMMARY_DELAY;
  const res = Object.fromEntries(targets.map((t) => [t.name, { added: [], tz: [], cpu: [], before: [], between: [], after: [] }]));
  await mock.call("log", { on: true });
  for (let i = 0; i < P.latencyN; i++) {
    for (const t of targets) {
      const c0 = cpuMs(t.pid);
      const r = await t.request("lat", false);
      if (!replyOk(r, false)) bad(t);
      const wall = ms(r.end - r.t0);
      const calls = await mock.take(PANEL_DELAYS.length + 1);
      const o = res[t.name];
      o.added.push(wall - ideal);
      o.tz.push(wall - unionLength(calls));
      o.cpu.push(cpuMs(t.pid) - c0);
      // Where the overhead sits: before the first upstream call, between the last panel
      // answer and the summary call, after the summary's answer (same clock as the mock).
      const byStart = [...calls].sort((a, b) => a.start - b.start);
      const summary = byStart.at(-1);
      const panel = byStart.slice(0, -1);
      o.before.push(byStart[0].start - ms(r.t0));
      o.between.push(summary.start - Math.max(...panel.map((c) => c.end)));
      o.after.push(ms(r.end) - summary.end);
    }
  }
  await mock.call("log", { on: false });
  return {
    ideal,
    by: Object.fromEntries(
      Object.entries(res).map(([k, v]) => [
        k,
        { added: stats(v.added), tz: stats(v.tz), cpu: median(v.cpu), before: median(v.before), between: median(v.between), after: median(v.after) },
      ]),
    ),
  };
}

async function streaming(targets, mock) {
  const idealFirst = Math.max(...PANEL_DELAYS) + SUMMARY_DELAY;
  const idealEnd = idealFirst + (STREAM_CHUNKS - 1) * CHUNK_INTERVAL;
  const res = Object.fromEntries(targets.map((t) => [t.name, { ttfb: [], first: [], end: [], chunk: [], chunkMedians: [], tz: [], cpu: [] }]));
  await mock.call("log", { on: true });
  for (let i = 0; i < P.streamN; i++) {
    for (const t of targets) {
      const c0 = cpuMs(t.pid);
      const r = await t.request("lat", true, { stamps: true });
      if (!replyOk(r, true) || r.chunks.length !== STREAM_CHUNKS) bad(t);
      const o = res[t.name];
      // The direct client only gets bytes once the summary answers: its floor is the
      // summary call's own time to first byte, less the mock's delay.
      o.ttfb.push(t.name === "direct" ? ms(r.first - r.summaryT0) - SUMMARY_DELAY : ms(r.first - r.t0));
      if (r.chunks.length) o.first.push(ms(r.chunks[0][1] - r.t0) - idealFirst);
      const wall = ms(r.end - r.t0);
      o.end.push(wall - idealEnd);
      const delays = r.chunks.map(([sent, got]) => ms(got - sent));
      o.chunk.push(...delays);
      o.chunkMedians.push(median(delays));
      const calls = await mock.take(PANEL_DELAYS.length + 1);
      o.tz.push(wall - unionLength(calls));
      o.cpu.push(cpuMs(t.pid) - c0);
    }
  }
  await mock.call("log", { on: false });
  return {
    idealFirst,
    idealEnd,
    by: Object.fromEntries(Object.entries(res).map(([k, v]) => [k, Object.fromEntries(Object.entries(v).map(([x, a]) => [x, stats(a)]))])),
  };
}

function cannon(opts) {
  return new Promise((resolve, reject) => autocannon(opts, (err, r) => (err ? reject(err) : resolve(r))));
}

async function throughput(targets, mock, ens) {
  const out = [];
  const body = (t, stream) =>
    t.name === "direct" ? JSON.stringify({ model: ens.zero.summary.model, messages: MESSAGES, stream }) : clientBody("zero", stream).toString();
  const url = (t) => (t.name === "direct" ? ens.zero.summary.url : t.url);
  const verify = (stream) => (b) => (stream ? b.includes("data: [DONE]") && !b.includes('"error"') : b.includes('"chat.completion"') && !b.includes('"error"'));
  // Warm every target under load first.
  for (const t of targets) {
    await cannon({ url: url(t), method: "POST", headers: { "content-type": "application/json" }, body: body(t, false), connections: 16, duration: 1 });
  }
  for (let round = 0; round < P.tputRounds; round++) {
    for (const c of CONCURRENCY) {
      for (const stream of [false, true]) {
        const order = round % 2 ? [...targets].reverse() : targets;
        for (const t of order) {
          const before = await mock.call("stats");
          const cpu0 = cpuMs(t.pid);
          const mock0 = cpuMs(mock.pid);
          const self0 = selfCpuMs();
          const r = await cannon({
            url: url(t),
            method: "POST",
            headers: { "content-type": "application/json" },
            body: body(t, stream),
            connections: c,
            duration: P.tputSeconds,
            verifyBody: verify(stream),
          });
          const after = await mock.call("stats");
          const done = r["2xx"];
          const seconds = (r.finish - r.start) / 1000 || r.duration;
          out.push({
            round,
            target: t.name,
            stream,
            c,
            rps: done / seconds,
            p50: r.latency.p50,
            p99: r.latency.p99,
            errors: r.errors + r.timeouts + r.non2xx + r.mismatches + (after.aborted - before.aborted),
            requests: done,
            cpuPerReq: (cpuMs(t.pid) - cpu0) / done,
            mockCpuPct: ((cpuMs(mock.pid) - mock0) / (seconds * 1000)) * 100,
            driverCpuPct: ((selfCpuMs() - self0) / (seconds * 1000)) * 100,
            workerCpuPct: ((cpuMs(t.pid) - cpu0) / (seconds * 1000)) * 100,
            upstreamPerReq: (after.requests - before.requests) / done,
          });
          if (out.at(-1).errors) errors[t.name] = (errors[t.name] ?? 0) + out.at(-1).errors;
          log(`throughput ${t.name} c=${c} ${stream ? "stream" : "json"}: ${f(out.at(-1).rps, 0)} req/s, p99 ${r.latency.p99} ms, errors ${out.at(-1).errors}`);
          await sleep(200);
        }
      }
    }
  }
  // Median over rounds.
  const keyed = new Map();
  for (const o of out) {
    const k = `${o.target}|${o.stream}|${o.c}`;
    if (!keyed.has(k)) keyed.set(k, []);
    keyed.get(k).push(o);
  }
  return [...keyed.values()].map((rs) => {
    const m = (x) => median(rs.map((r) => r[x]));
    return {
      target: rs[0].target,
      stream: rs[0].stream,
      c: rs[0].c,
      rounds: rs.length,
      rps: m("rps"),
      p50: m("p50"),
      p99: m("p99"),
      errors: rs.reduce((s, r) => s + r.errors, 0),
      requests: rs.reduce((s, r) => s + r.requests, 0),
      cpuPerReq: m("cpuPerReq"),
      workerCpuPct: m("workerCpuPct"),
      mockCpuPct: m("mockCpuPct"),
      driverCpuPct: m("driverCpuPct"),
      upstreamPerReq: m("upstreamPerReq"),
    };
  });
}

/** Sequential requests, interleaved across targets; latency minus ideal and CPU per request. */
async function scaleRun(targets, mock, ensName, stream, ideal) {
  const res = Object.fromEntries(targets.map((t) => [t.name, { added: [], cpu: [], mockCpu: [] }]));
  for (let i = 0; i < P.scaleN; i++) {
    for (const t of targets) {
      const c0 = cpuMs(t.pid);
      const m0 = cpuMs(mock.pid);
      const r = await t.request(ensName, stream);
      if (!replyOk(r, stream)) bad(t);
      res[t.name].added.push(ms(r.end - r.t0) - ideal);
      await sleep(1); // let the worker finish its after-response work (log line, stream close)
      res[t.name].cpu.push(cpuMs(t.pid) - c0);
      res[t.name].mockCpu.push(cpuMs(mock.pid) - m0);
    }
  }
  return Object.fromEntries(
    Object.entries(res).map(([k, v]) => [k, { added: stats(v.added), cpu: median(v.cpu), mockCpu: median(v.mockCpu) }]),
  );
}

async function scale(targets, mock) {
  const panel = [];
  for (const stream of [false, true]) {
    for (const k of PANEL_SIZES) {
      const ideal = SCALE_DELAY * Math.ceil(k / MAX_IN_FLIGHT) + SCALE_DELAY;
      log(`scale: panel ${k} ${stream ? "stream" : "json"}`);
      panel.push({ k, stream, ideal, by: await scaleRun(targets, mock, `p${k}`, stream, ideal) });
    }
  }
  const answer = [];
  for (const stream of [false, true]) {
    for (const s of ANSWER_SIZES) {
      log(`scale: answer ${s} B ${stream ? "stream" : "json"}`);
      answer.push({ size: s, stream, by: await scaleRun(targets, mock, `a${s}`, stream, 0) });
    }
  }
  return { panel, answer };
}

function size() {
  const dir = mkdtempSync(path.join(os.tmpdir(), "n1-dry-"));
  try {
    // Runs the [build] command (the release build) and bundles without uploading.
    const out = execFileSync("npx", ["wrangler", "deploy", "--dry-run", "--outdir", dir], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    const m = out.match(/Total Upload:\s*([\d.]+)\s*KiB\s*\/\s*gzip:\s*([\d.]+)\s*KiB/);
    const wasm = readFileSync("build/index_bg.wasm");
    return {
      uploadKiB: m ? Number(m[1]) : NaN,
      gzipKiB: m ? Number(m[2]) : NaN,
      wasmBytes: wasm.length,
      wasmGzipBytes: zlib.gzipSync(wasm, { level: 9 }).length,
      jsBytes: statSync("build/index.js").size,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function coldStart(name, spec) {
  const runs = [];
  for (let i = 0; i < P.coldN; i++) {
    const w = await startWorkerd(spec);
    const r = await post(agent(), `${w.url}/v1/chat/completions`, clientBody("zero", false));
    if (!replyOk(r, false)) errors[name] = (errors[name] ?? 0) + 1;
    runs.push({ ready: ms(w.tReady - w.t0), first: ms(r.end - w.t0), firstRequest: ms(r.end - r.t0) });
    await w.close();
  }
  return { ready: median(runs.map((r) => r.ready)), first: median(runs.map((r) => r.first)), firstRequest: median(runs.map((r) => r.firstRequest)), n: runs.length };
}

// ---------------------------------------------------------------- report

function machine() {
  const cpus = os.cpus();
  let commit = "unknown";
  let dirty = "";
  try {
    commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
    dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { encoding: "utf8" }).trim() ? " (with uncommitted changes)" : "";
  } catch {}
  let workerd = "unknown";
  try {
    workerd = execFileSync("node_modules/.bin/workerd", ["--version"], { encoding: "utf8" }).trim();
  } catch {}
  let profile = "";
  try {
    profile = readFileSync("Cargo.toml", "utf8").match(/\[profile\.release\]([\s\S]*?)(\n\[|$)/)[1].trim().split("\n").join(", ");
  } catch {}
  return {
    cpu: `${cpus[0]?.model ?? "?"} × ${cpus.length}`,
    mem: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    workerd,
    commit: commit + dirty,
    profile,
  };
}

function report(R) {
  const L = [];
  const p = (...x) => L.push(...x);
  const M = R.machine;
  p(
    "# Benchmarks",
    "",
    `Generated by \`npm run bench\`${R.quick ? " (BENCH_QUICK=1: few samples, indicative only)" : ""}${R.only ? ` (sections: ${R.only.join(", ")})` : ""} on ${R.date}, commit \`${M.commit}\`, in ${f(R.seconds / 60, 1)} min.`,
    "",
    `Machine: ${M.cpu}, ${M.mem}, ${M.os}; Node ${M.node}; ${M.workerd} (Miniflare 4). Release profile: \`${M.profile}\`.`,
    "",
    "Every figure is measured three ways in the same run, requests interleaved across the three:",
    "",
    "- **direct**: the bench client makes the ensemble's calls to the mock itself (the floor of the measurement: client, loopback, mock timers);",
    "- **reference**: `bench/reference-worker.mjs`, a minimal JavaScript Worker doing the same fan-out (≤ 6 calls open) + summary relay with no validation, no retries, no metadata, streaming bytes copied unparsed (the runtime floor: what any Worker pays);",
    "- **N-1**: the worker as deployed (`worker/entry.mjs` around the release build) in workerd with bindings `N1_CONFIG`, `N1_ALLOW_ANONYMOUS` and `N1_ALLOW_INSECURE_UPSTREAMS` (the mock is plain http on loopback).",
    "",
    "Each worker runs in its own workerd process (Miniflare, 127.0.0.1), the mock upstream in its own Node process (precomputed bodies; its CPU is reported). **N-1 − reference is our own cost.** Times in ms.",
    "",
  );

  const T = ["direct", "reference", "n1"];
  const row = (name, s, d = 2) => `| ${name} | ${f(s.p50, d)} | ${f(s.p95, d)} | ${f(s.p99, d)} |`;
  const diff = (a, b) => ({ p50: a.p50 - b.p50, p95: a.p95 - b.p95, p99: a.p99 - b.p99 });

  if (R.latency) {
    const b = R.latency.by;
    p(
      `## 1. Added latency, non-streaming`,
      "",
      `Panel of 3 with mock delays ${PANEL_DELAYS.join("/")} ms, summary ${SUMMARY_DELAY} ms: ideal ${R.latency.ideal} ms. Added = measured − ideal, over ${b.n1.added.n} requests per target. TensorZero-style overhead = wall time − the union of the intervals in which an upstream call was open (recorded by the mock).`,
      "",
      "| target | added p50 | p95 | p99 | overhead p50 | p95 | p99 | worker CPU/req |",
      "|---|---|---|---|---|---|---|---|",
      ...T.map((t) => `| ${t} | ${f(b[t].added.p50)} | ${f(b[t].added.p95)} | ${f(b[t].added.p99)} | ${f(b[t].tz.p50)} | ${f(b[t].tz.p95)} | ${f(b[t].tz.p99)} | ${t === "direct" ? "–" : f(b[t].cpu)} |`),
      (() => {
        const d = diff(b.n1.added, b.reference.added);
        const z = diff(b.n1.tz, b.reference.tz);
        return `| **N-1 − reference** | **${f(d.p50)}** | ${f(d.p95)} | **${f(d.p99)}** | **${f(z.p50)}** | ${f(z.p95)} | ${f(z.p99)} | ${f(b.n1.cpu - b.reference.cpu)} |`;
      })(),
      "",
      "p95/p99 rest on 1–5 samples per 100 and move by several ms between runs on this shared 2-core VM (the reference's own p99 has been anywhere from 9 to 37 ms); the p50s and the CPU time are the stable figures.",
      "",
      "Where the overhead sits (p50, ms): from the client's request to the first upstream call; from the last panel answer to the summary call; from the end of the summary's answer to the end of the reply.",
      "",
      "| target | request → first call | last panel answer → summary call | summary answer → reply |",
      "|---|---|---|---|",
      ...T.filter((t) => b[t].before !== undefined).map((t) => `| ${t} | ${f(b[t].before)} | ${f(b[t].between)} | ${f(b[t].after)} |`),
      ...(b.n1.before !== undefined
        ? [`| **N-1 − reference** | ${f(b.n1.before - b.reference.before)} | ${f(b.n1.between - b.reference.between)} | ${f(b.n1.after - b.reference.after)} |`]
        : []),
      "",
    );
  }

  if (R.streaming) {
    const b = R.streaming.by;
    p(
      "## 2. Streaming",
      "",
      `Same panel; the summary streams ${STREAM_CHUNKS} content chunks ${CHUNK_INTERVAL} ms apart, each stamped by the mock with its send time (CLOCK_MONOTONIC), so the relay delay of every chunk is measured end to end (arrival − send). Ideal first content token ${R.streaming.idealFirst} ms, ideal end ${R.streaming.idealEnd} ms. ${b.n1.first.n} streams per target. Direct's first byte is the summary call's own time to first byte (less the mock's delay).`,
      "",
      "| target | first byte p50 | p99 | first token − ideal p50 | p95 | p99 | end − ideal p50 | p99 | relay delay/chunk p50 | p95 | p99 | overhead p50 | worker CPU/stream |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
      ...T.map(
        (t) =>
          `| ${t} | ${f(b[t].ttfb.p50)} | ${f(b[t].ttfb.p99)} | ${f(b[t].first.p50)} | ${f(b[t].first.p95)} | ${f(b[t].first.p99)} | ${f(b[t].end.p50)} | ${f(b[t].end.p99)} | ${f(b[t].chunk.p50, 3)} | ${f(b[t].chunk.p95, 3)} | ${f(b[t].chunk.p99, 3)} | ${f(b[t].tz.p50)} | ${t === "direct" ? "–" : f(b[t].cpu.p50)} |`,
      ),
      `| **N-1 − reference** | ${f(b.n1.ttfb.p50 - b.reference.ttfb.p50)} | ${f(b.n1.ttfb.p99 - b.reference.ttfb.p99)} | **${f(b.n1.first.p50 - b.reference.first.p50)}** | ${f(b.n1.first.p95 - b.reference.first.p95)} | **${f(b.n1.first.p99 - b.reference.first.p99)}** | ${f(b.n1.end.p50 - b.reference.end.p50)} | ${f(b.n1.end.p99 - b.reference.end.p99)} | **${f(b.n1.chunk.p50 - b.reference.chunk.p50, 3)}** | ${f(b.n1.chunk.p95 - b.reference.chunk.p95, 3)} | ${f(b.n1.chunk.p99 - b.reference.chunk.p99, 3)} | ${f(b.n1.tz.p50 - b.reference.tz.p50)} | ${f(b.n1.cpu.p50 - b.reference.cpu.p50)} (${f(((b.n1.cpu.p50 - b.reference.cpu.p50) / STREAM_CHUNKS) * 1000, 1)} µs/chunk) |`,
      "",
    );
  }

  if (R.throughput) {
    p(
      "## 3. Throughput",
      "",
      `autocannon 9, ${R.params.tputSeconds} s per run, ${R.params.tputRounds} round(s) (median shown), zero-delay mock, panel of 3 + summary (4 upstream calls per request; the streaming summary is 10 chunks in one write). Direct = autocannon against one mock call (the load generator's floor). Errors = connection errors + timeouts + non-2xx + bodies without a complete answer (an error event, no \`[DONE]\`) + upstream responses the mock saw aborted. CPU/req = CPU time of that target's workerd process (all threads, /proc schedstat) over the run ÷ requests. autocannon's latencies are whole ms.`,
      "",
      "| mode | c | target | req/s | p50 | p99 | errors | worker CPU/req | worker CPU % | mock CPU % | driver CPU % |",
      "|---|---|---|---|---|---|---|---|---|---|---|",
    );
    for (const stream of [false, true]) {
      for (const c of CONCURRENCY) {
        for (const t of T) {
          const o = R.throughput.find((x) => x.target === t && x.stream === stream && x.c === c);
          if (!o) continue;
          p(
            `| ${stream ? "stream" : "json"} | ${c} | ${t} | ${f(o.rps, 0)} | ${o.p50} | ${o.p99} | ${o.errors} | ${t === "direct" ? "–" : f(o.cpuPerReq, 3)} | ${t === "direct" ? "–" : f(o.workerCpuPct, 0)} | ${f(o.mockCpuPct, 0)} | ${f(o.driverCpuPct, 0)} |`,
          );
        }
        const n = R.throughput.find((x) => x.target === "n1" && x.stream === stream && x.c === c);
        const r = R.throughput.find((x) => x.target === "reference" && x.stream === stream && x.c === c);
        if (n && r) p(`| ${stream ? "stream" : "json"} | ${c} | **N-1 / reference** | **${f(n.rps / r.rps)}×** | | | | ${f(n.cpuPerReq - r.cpuPerReq, 3)} more | | | |`);
      }
    }
    p("");
  }

  if (R.scale) {
    p(
      "## 4. Scale of the work",
      "",
      `Sequential requests (${R.params.scaleN} per target and point), interleaved. CPU/req = median CPU time of the target's workerd per request; mock CPU/req shows what the upstream side costs.`,
      "",
      `**Panel size** (each panel member and the summary answer after ${SCALE_DELAY} ms; N-1 keeps at most ${MAX_IN_FLIGHT} calls open, so 12 models take two waves: ideal = ${SCALE_DELAY} × ⌈n/6⌉ + ${SCALE_DELAY} ms; the reference has the same cap).`,
      "",
      "| mode | panel | ideal | direct added p50 | reference added p50 | p99 | N-1 added p50 | p99 | N-1 − ref p50 | reference CPU/req | N-1 CPU/req | mock CPU/req |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|",
      ...R.scale.panel.map(
        (x) =>
          `| ${x.stream ? "stream" : "json"} | ${x.k} | ${x.ideal} | ${f(x.by.direct.added.p50)} | ${f(x.by.reference.added.p50)} | ${f(x.by.reference.added.p99)} | ${f(x.by.n1.added.p50)} | ${f(x.by.n1.added.p99)} | **${f(x.by.n1.added.p50 - x.by.reference.added.p50)}** | ${f(x.by.reference.cpu, 3)} | ${f(x.by.n1.cpu, 3)} | ${f(x.by.n1.mockCpu, 3)} |`,
      ),
      "",
      "**Answer size** (zero-delay mock, panel of 3; every panel answer and the summary answer have this size; the streamed summary comes in 64-byte content chunks, all in one write, so 256 KB is 4096 chunks). Latency is the whole request.",
      "",
      "| mode | answer | direct p50 | reference p50 | p99 | N-1 p50 | p99 | N-1 − ref p50 | reference CPU/req | N-1 CPU/req | mock CPU/req |",
      "|---|---|---|---|---|---|---|---|---|---|---|",
      ...R.scale.answer.map(
        (x) =>
          `| ${x.stream ? "stream" : "json"} | ${x.size / 1024} KB | ${f(x.by.direct.added.p50)} | ${f(x.by.reference.added.p50)} | ${f(x.by.reference.added.p99)} | ${f(x.by.n1.added.p50)} | ${f(x.by.n1.added.p99)} | **${f(x.by.n1.added.p50 - x.by.reference.added.p50)}** | ${f(x.by.reference.cpu, 3)} | ${f(x.by.n1.cpu, 3)} | ${f(x.by.n1.mockCpu, 3)} |`,
      ),
      "",
    );
  }

  if (R.size || R.cold) {
    p("## 5. Size and cold start", "");
    if (R.size) {
      const s = R.size;
      p(
        `- \`wrangler deploy --dry-run\`: total upload ${f(s.uploadKiB)} KiB, **gzip ${f(s.gzipKiB)} KiB**.`,
        `- \`build/index_bg.wasm\`: ${(s.wasmBytes / 1024).toFixed(1)} KiB (${(s.wasmGzipBytes / 1024).toFixed(1)} KiB gzip -9); \`build/index.js\` ${(s.jsBytes / 1024).toFixed(1)} KiB.`,
      );
    }
    if (R.cold) {
      p(
        `- Cold start (median of ${R.cold.n1.n}; \`new Miniflare()\` → workerd spawned and listening → first chat completion answered, zero-delay mock): reference ready ${f(R.cold.reference.ready, 0)} ms, first response ${f(R.cold.reference.first, 0)} ms (that request: ${f(R.cold.reference.firstRequest, 1)} ms); N-1 ready ${f(R.cold.n1.ready, 0)} ms, first response ${f(R.cold.n1.first, 0)} ms (that request: ${f(R.cold.n1.firstRequest, 1)} ms). Miniflare's own start-up is in both.`,
      );
    }
    p("");
  }

  if (R.wranglerDev) p(...devSection(R.wranglerDev));

  const devErrors = Object.entries(errors).filter(([k]) => k.startsWith("dev:"));
  p(
    "## Errors",
    "",
    `Across every section: ${T.map((t) => `${t} ${errors[t] ?? 0}`).join(", ")}${R.wranglerDev?.names ? `; section 6: ${devErrors.length ? devErrors.map(([k, v]) => `${k.slice(4)} ${v}`).join(", ") : "none"}` : ""}.`,
    "",
  );

  if (R.targets) {
    p("## Targets (issues 6 and 12)", "", "| target | figure | met |", "|---|---|---|", ...R.targets.map((t) => `| ${t.what} | ${t.value} | ${t.met ? "yes" : "**no**"} |`), "");
  }
  if (R.notes) p(R.notes.trim(), "");
  return L.join("\n");
}

/** Section 6 of the report: N-1 and the JavaScript port under `wrangler dev` (compareDev result). */
function devSection(W) {
  const L = ["## 6. Under `wrangler dev`: N-1 vs its original JavaScript port (issue 12)", ""];
  const howTo = [
    "The port is `cloudfare_worker/worker.js` of [leezhuuuuu/N-1](https://github.com/leezhuuuuu/N-1) (MIT). It is not part of this repository and the bench",
    "never writes it here: give its path in `BENCH_PORT_JS`, e.g.",
    "",
    "```sh",
    "git clone --depth 1 https://github.com/leezhuuuuu/N-1 /tmp/n1-js",
    "BENCH_PORT_JS=/tmp/n1-js/cloudfare_worker/worker.js npm run bench      # or BENCH_ONLY=wranglerdev for this section alone",
    "```",
    "",
    "The bench copies it to a temp directory, replaces its `CONFIG` object there (same mock, same ensemble; one attempt per call) and",
    "writes a `wrangler.toml` for it with N-1's `compatibility_date`.",
  ];
  if (W.skipped) {
    L.push(`**Skipped in this run: ${W.skipped}.**`, "", ...howTo, "");
    return L;
  }
  const f2 = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");
  const ratio = (a, b) => (b > 0 && Number.isFinite(a) ? `${(a / b).toFixed(2)}×` : "n/a");
  const port = { mf: "port-mf", wd: "port-wd", api: "port-api" };
  const mode = (name) => name.split("-")[1];
  const where = W.names.filter((x) => W.by[x].where && Number.isFinite(W.by[x].where.before));
  const label = {
    "n1-mf": "N-1, plain Miniflare",
    "port-mf": "port, plain Miniflare",
    "n1-wd": "N-1, plain `wrangler dev` (`N1_DEV_INSPECT=1 npm run dev`; `npm run dev` before scripts/dev-server.mjs)",
    "port-wd": "**port, `wrangler dev`**",
    "n1-api": "**N-1, wrangler's dev server with the inspector off (`npm run dev`)**",
    "port-api": "port, dev server with the inspector off",
    "n1-api-nokv": "N-1, inspector off, without the KV binding (no KV read on the request path)",
  };
  const d = W.by.direct;
  L.push(
    ...howTo,
    "",
    `Port file in this run: ${W.port.lines} lines, sha256 \`${W.port.sha256.slice(0, 16)}…\`. Same ensemble as sections 1-2 (panel of 3 at ${PANEL_DELAYS.join("/")} ms, summary ${SUMMARY_DELAY} ms; streamed: ${DEV_CHUNKS} chunks 2 ms apart, stamped).`,
    `${W.n} rounds, each a non-streaming and a streaming request to every target, interleaved (order reversed every other round). The direct client made the same calls itself: ` +
      `its added latency over the ideal ${W.ideal} ms was ${f2(d.json.p50)} ms (p50) non-streaming and ${f2(d.first.p50)} ms to the first content.`,
    "**Added** = the target's time − the direct calls' time, at p50/p95 (non-streaming: whole reply; streaming: first content chunk of the summary, the port's placeholder chunk not counted). × port = N-1's added time ÷ the port's, run the same way.",
    "",
    "How each is run: *`wrangler dev`* is `wrangler dev --config <cfg> --ip 127.0.0.1 --port <free>` with `CLOUDFLARE_CF_FETCH_ENABLED=false` (N-1: `wrangler.local.toml`, written as `npm run dev` writes it, i.e. without `[ai]`, with its `[build]`, assets, KV and rate limiter; vars `N1_CONFIG`, `N1_ALLOW_ANONYMOUS`, `N1_ALLOW_INSECURE_UPSTREAMS` from `--env-file`). " +
      "*Inspector off* is the same config and vars through wrangler's own dev server API, `unstable_startWorker({ config, dev: { inspector: false, server } })`, as `npm run dev` runs N-1 (scripts/dev-server.mjs; here bench/wd-api-host.mjs). *Plain Miniflare* is how sections 1-5 run workers.",
    "",
    "| target | non-streaming added p50 | p95 | × port (p50) | first content added p50 | p95 | × port (p50) | first byte p50 | CPU/request json: worker's workerd | wrangler's proxy workerd | wrangler's Node | CPU/stream: worker's workerd | proxy workerd | Node |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  );
  for (const name of W.names.filter((x) => x !== "direct")) {
    const o = W.by[name];
    const x = overDirect(W, name);
    const px = name.startsWith("n1") && W.by[port[mode(name)]] ? overDirect(W, port[mode(name)]) : null;
    const c = (m) => ["user", "proxy", "node"].map((k) => (o.cpu[m][k] === undefined ? "–" : f2(o.cpu[m][k]))).join(" | ");
    L.push(
      `| ${label[name] ?? name} | ${f2(x.json.p50)} | ${f2(x.json.p95)} | ${px ? ratio(x.json.p50, px.json.p50) : ""} | ${f2(x.first.p50)} | ${f2(x.first.p95)} | ${px ? ratio(x.first.p50, px.first.p50) : ""} | ${f2(o.ttfb.p50)} | ${c("json")} | ${c("stream")} |`,
    );
  }
  const key = (a, b, what) => {
    if (!W.by[a] || !W.by[b]) return null;
    const x = overDirect(W, a);
    const y = overDirect(W, b);
    return `- ${what}: non-streaming ${f2(x.json.p50)} vs ${f2(y.json.p50)} ms (${ratio(x.json.p50, y.json.p50)}, ${f2(x.json.p50 - y.json.p50)} ms), first content ${f2(x.first.p50)} vs ${f2(y.first.p50)} ms (${ratio(x.first.p50, y.first.p50)}, ${f2(x.first.p50 - y.first.p50)} ms).`;
  };
  if (where.length) {
    L.push(
      "",
      "Where the non-streaming time goes (p50, ms, from the mock's arrival/finish times of each upstream call):",
      "",
      "| target | request → first upstream call | last panel answer → summary call | summary answer → reply |",
      "|---|---|---|---|",
      ...where.map((x) => `| ${label[x] ?? x} | ${f2(W.by[x].where.before)} | ${f2(W.by[x].where.between)} | ${f2(W.by[x].where.after)} |`),
    );
  }
  L.push(
    "",
    "CPU/request = median CPU time (all threads, /proc schedstat) of each process on the path from one request of that target to its next one: the workerd running the worker, wrangler's proxy workerd (proxy worker + inspector proxy worker) and wrangler's Node process (for plain Miniflare: the Node process hosting Miniflare).",
    "",
    "Added latency over the direct calls, p50, N-1 vs port (N-1's ÷ the port's):",
    "",
    ...[
      key("n1-api", "port-wd", "N-1 as `npm run dev` runs it (inspector off) vs the port under `wrangler dev`, as each project's users run them"),
      key("n1-wd", "port-wd", "both under plain `wrangler dev`"),
      key("n1-api-nokv", "port-wd", "N-1 with the inspector off and no KV read on the request path vs the port under `wrangler dev`"),
      key("n1-api", "port-api", "both with the inspector off"),
      key("n1-mf", "port-mf", "both in plain Miniflare"),
    ].filter(Boolean),
    "",
    "What makes `wrangler dev` slower, and the fix: see *The `wrangler dev` path (issue 12)* below (bench/NOTES.md); `node bench/devpath.mjs` runs every variant measured there.",
    "",
  );
  return L;
}

function targetsCheck(R) {
  const out = [];
  const add = (what, value, met) => out.push({ what, value, met });
  if (R.latency) {
    const b = R.latency.by;
    add("added latency over reference, non-streaming, p50 < 0.5 ms", f(b.n1.added.p50 - b.reference.added.p50), b.n1.added.p50 - b.reference.added.p50 < 0.5);
    add("… p99 < 2 ms", f(b.n1.added.p99 - b.reference.added.p99), b.n1.added.p99 - b.reference.added.p99 < 2);
  }
  if (R.streaming) {
    const b = R.streaming.by;
    add("added latency over reference, streaming (first content token), p50 < 0.5 ms", f(b.n1.first.p50 - b.reference.first.p50), b.n1.first.p50 - b.reference.first.p50 < 0.5);
    add("… p99 < 2 ms", f(b.n1.first.p99 - b.reference.first.p99), b.n1.first.p99 - b.reference.first.p99 < 2);
    add("streaming relay per chunk over reference, p50 < 0.2 ms", f(b.n1.chunk.p50 - b.reference.chunk.p50, 3), b.n1.chunk.p50 - b.reference.chunk.p50 < 0.2);
    add("first byte < 5 ms after the request (N-1, p50)", `p50 ${f(b.n1.ttfb.p50)}, p95 ${f(b.n1.ttfb.p95)}, p99 ${f(b.n1.ttfb.p99)}`, b.n1.ttfb.p50 < 5);
  }
  if (R.throughput) {
    for (const c of [16, 64]) {
      for (const stream of [false, true]) {
        const n = R.throughput.find((x) => x.target === "n1" && x.stream === stream && x.c === c);
        const r = R.throughput.find((x) => x.target === "reference" && x.stream === stream && x.c === c);
        if (n && r) add(`throughput c=${c} ${stream ? "stream" : "json"} ≥ reference`, `${f(n.rps, 0)} vs ${f(r.rps, 0)} req/s (${f(n.rps / r.rps)}×)`, n.rps >= r.rps);
      }
    }
  }
  if (R.size) add("gzip bundle ≤ 200 KiB (issue 12)", `${f(R.size.gzipKiB)} KiB`, R.size.gzipKiB <= 200);
  const W = R.wranglerDev;
  if (W?.names) {
    for (const [a, b, what] of [
      ["n1-api", "port-wd", "N-1 as `npm run dev` runs it (inspector off) vs the port under `wrangler dev`"],
      ["n1-wd", "port-wd", "both under plain `wrangler dev`"],
    ]) {
      if (!W.by[a] || !W.by[b]) continue;
      const x = overDirect(W, a);
      const y = overDirect(W, b);
      add(`${what}: N-1's added latency ≤ the port's, non-streaming p50 (issue 12)`, `${f(x.json.p50)} vs ${f(y.json.p50)} ms (${f(x.json.p50 / y.json.p50)}×)`, x.json.p50 <= y.json.p50);
      add(`… first streamed content p50`, `${f(x.first.p50)} vs ${f(y.first.p50)} ms (${f(x.first.p50 / y.first.p50)}×)`, x.first.p50 <= y.first.p50);
    }
  }
  const devErr = Object.entries(errors).filter(([k]) => k.startsWith("dev:")).reduce((a, [, v]) => a + v, 0);
  add(
    "no errors",
    `n1 ${errors.n1 ?? 0}, reference ${errors.reference ?? 0}, direct ${errors.direct ?? 0}${W?.names ? `, section 6 ${devErr}` : ""}`,
    !(errors.n1 || errors.reference || errors.direct || devErr),
  );
  return out;
}

// ---------------------------------------------------------------- main

/** The sections bench/budget.mjs and bench/panel.mjs wrote into the report, kept when the report is rewritten. */
function keptSections() {
  let old = "";
  try {
    old = readFileSync(OUT, "utf8");
  } catch {}
  return ["budgets", "panel"].map((k) => "\n" + (old.match(new RegExp(`<!-- ${k} -->[\\s\\S]*<!-- \\/${k} -->\\n`))?.[0] ?? "")).join("");
}

async function main() {
  if (process.env.BENCH_REPORT_ONLY === "1") {
    // Rewrite the report (e.g. after editing bench/NOTES.md) from the last run's figures.
    const R = JSON.parse(readFileSync("bench/last-run.json", "utf8"));
    Object.assign(errors, R.errors);
    R.targets = targetsCheck(R);
    R.notes = readFileSync("bench/NOTES.md", "utf8");
    writeFileSync(OUT, report(R) + keptSections());
    return log(`rewrote ${OUT} from bench/last-run.json`);
  }
  const t0 = Date.now();
  const R = { date: new Date().toISOString().replace(/\.\d+Z$/, "Z"), machine: machine(), params: P, quick: QUICK, only: ONLY ? [...ONLY] : null };
  if (on("size")) {
    log("size: wrangler deploy --dry-run (runs the release build)");
    R.size = size();
  } else if (process.env.BENCH_NO_BUILD !== "1") {
    log("release build");
    execFileSync("bash", ["scripts/build.sh"], { stdio: ["ignore", "ignore", "inherit"] });
  }
  log("starting the mock upstream and both workers");
  const mock = await startMock();
  const ens = ensembles(mock.url);
  const n1Spec = { scriptPath: "worker/entry.mjs", bindings: { N1_CONFIG: JSON.stringify(n1Config(ens)), N1_ALLOW_ANONYMOUS: "true", N1_ALLOW_INSECURE_UPSTREAMS: "true" } };
  const refSpec = { scriptPath: "bench/reference-worker.mjs", bindings: { REF_CONFIG: JSON.stringify(ens) } };
  const n1 = await startWorkerd(n1Spec);
  const ref = await startWorkerd(refSpec);
  const targets = [directTarget(ens), workerTarget("reference", ref), workerTarget("n1", n1)];
  try {
    log("warm-up");
    await warm(targets);
    if (on("latency")) {
      log("1. added latency, non-streaming");
      R.latency = await latency(targets, mock);
    }
    if (on("stream")) {
      log("2. streaming");
      R.streaming = await streaming(targets, mock);
    }
    if (on("throughput")) {
      log("3. throughput");
      R.throughput = await throughput(targets, mock, ens);
    }
    if (on("scale")) {
      log("4. scale");
      R.scale = await scale(targets, mock);
    }
    if (on("cold")) {
      log("5. cold start");
      R.cold = { reference: await coldStart("reference", refSpec), n1: await coldStart("n1", n1Spec) };
    }
    if (on("wranglerdev")) {
      if (!PORT_JS) {
        log("6. wrangler dev vs the JavaScript port: SKIPPED, BENCH_PORT_JS is not set (see BENCHMARKS.md, section 6)");
        R.wranglerDev = { skipped: "`BENCH_PORT_JS` was not set" };
      } else if (!existsSync(PORT_JS)) {
        throw new Error(`BENCH_PORT_JS=${PORT_JS}: no such file`);
      } else {
        log("6. wrangler dev: N-1 vs the JavaScript port");
        // The Miniflare workers of sections 1-5 are not needed any more.
        await n1.close();
        await ref.close();
        const text = readFileSync(PORT_JS);
        R.wranglerDev = {
          port: { sha256: createHash("sha256").update(text).digest("hex"), lines: text.toString().split("\n").length },
          ...(await compareDev({ mock, names: DEV_VARIANTS, n: P.devN, portJs: PORT_JS, log: (...a) => log("6.", ...a) })),
        };
        for (const t of R.wranglerDev.names) if (R.wranglerDev.by[t].errors) errors[`dev:${t}`] = R.wranglerDev.by[t].errors;
      }
    }
  } finally {
    for (const t of targets) t.agent.destroy();
    await n1.close().catch(() => {});
    await ref.close().catch(() => {});
    await mock.close();
  }
  R.seconds = (Date.now() - t0) / 1000;
  R.errors = errors;
  R.targets = targetsCheck(R);
  try {
    R.notes = readFileSync("bench/NOTES.md", "utf8");
  } catch {}
  writeFileSync("bench/last-run.json", JSON.stringify(R, null, 1));
  writeFileSync(OUT, report(R) + keptSections());
  log(`wrote ${OUT} in ${f(R.seconds, 0)} s`);
  for (const t of R.targets) log(`${t.met ? "met " : "MISS"} ${t.what}: ${t.value}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
