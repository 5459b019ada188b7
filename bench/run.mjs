// `npm run bench`: N-1's cost per request, measured three ways side by side in one run:
//   direct    the bench client calls the mock itself (the floor of the measurement),
//   reference a minimal JavaScript Worker doing the same fan-out + relay (bench/reference-worker.mjs),
//             in its own workerd through Miniflare (the runtime floor),
//   n1        the worker as deployed (worker/entry.mjs around build/) in its own workerd through Miniflare.
// Our own cost is n1 − reference. Section 6 (issue 12) runs N-1 under `wrangler dev` as users run
// it next to N-1's original JavaScript port (BENCH_PORT_JS=/path/to/cloudfare_worker/worker.js of
// leezhuuuuu/N-1; skipped with a note when unset), see bench/dev-targets.mjs.
// Writes BENCHMARKS.md (and bench/last-run.json).
// BENCH_QUICK=1: fewer samples (about 2 minutes, 5 with section 6). BENCH_ONLY=latency,stream,throughput,scale,size,cold,wranglerdev,budget,panel
// runs a subset (the report then says so). BENCH_OUT=path changes the report's path, and its figures
// go beside it (path.json), so a trial run leaves BENCHMARKS.md's figures alone.
// BENCH_NO_BUILD=1 skips the build when the size section (whose dry run builds) is not run.
// BENCH_REPORT_ONLY=1 rewrites the report from the figures (bench/last-run.json) without measuring.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import autocannon from "autocannon";
import { agent, callPhases, cpuMs, median, nowNs, percentile, post, selfCpuMs, sleep, startMock, startWorkerd, stats, unionLength } from "./lib.mjs";
import { compareDev } from "./dev-targets.mjs";
import { ANSWER_SIZES, CHUNK_INTERVAL, CONCURRENCY, MAX_IN_FLIGHT, PANEL_DELAYS, PANEL_SIZES, SCALE_DELAY, STREAM_CHUNKS, SUMMARY_DELAY } from "./params.mjs";
import { machine, report, targetsCheck } from "./report.mjs";

const ROOT = path.resolve(new URL("..", import.meta.url).pathname);
process.chdir(ROOT);
const QUICK = process.env.BENCH_QUICK === "1";
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(",")) : null;
// budget and panel are scripts/bench.sh's (bench/budget.mjs, bench/panel.mjs); a name that is
// none of these is a typo, which would otherwise measure nothing and say nothing.
const SECTIONS = ["latency", "stream", "throughput", "scale", "size", "cold", "wranglerdev", "budget", "panel"];
for (const s of ONLY ?? []) {
  if (!SECTIONS.includes(s)) {
    console.error(`BENCH_ONLY: no section "${s}" (sections: ${SECTIONS.join(", ")})`);
    process.exit(2);
  }
}
const OUT = process.env.BENCH_OUT ?? "BENCHMARKS.md";
const FIGURES = process.env.BENCH_OUT ? `${OUT.replace(/\.md$/, "")}.json` : "bench/last-run.json";
const on = (section) => !ONLY || ONLY.has(section);

const P = QUICK
  ? { latencyN: 20, streamN: 6, tputSeconds: 2, tputRounds: 1, scaleN: 10, coldN: 2, warmup: 20, devN: 8, devSteady: 50 }
  : { latencyN: 100, streamN: 50, tputSeconds: 3, tputRounds: 3, scaleN: 30, coldN: 5, warmup: 150, devN: 70, devSteady: 250 };
const PORT_JS = process.env.BENCH_PORT_JS;
// Section 6: each worker in plain Miniflare, under `wrangler dev` as users run it, and under
// wrangler's dev server with the inspector off (how `npm run dev` runs N-1, /v1/* sent past
// Miniflare's asset router: scripts/dev-worker.mjs).
// n1-api-router: the same with every request through that router, as `wrangler dev` routes it
// (the port, with no page, has no router in front). `node bench/devpath.mjs` has more variants
// (n1-api-noassets: without [assets] at all).
const DEV_VARIANTS = ["n1-mf", "port-mf", "n1-wd", "port-wd", "n1-api", "port-api", "n1-api-router"];


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
      const w = callPhases(calls, ms(r.t0), ms(r.end));
      o.before.push(w.before);
      o.between.push(w.between);
      o.after.push(w.after);
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
  const res = Object.fromEntries(targets.map((t) => [t.name, { ttfb: [], first: [], end: [], chunk: [], chunkMedians: [], tz: [], cpu: [], before: [], between: [], relay1: [] }]));
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
      // Where the time to the first content goes: before the first upstream call, between
      // the last panel answer and the summary call, and the first chunk's relay (arrival − send).
      if (r.chunks.length) {
        const w = callPhases(calls, ms(r.t0), ms(r.end));
        o.before.push(w.before);
        o.between.push(w.between);
        o.relay1.push(delays[0]);
      }
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
    const R = JSON.parse(readFileSync(FIGURES, "utf8"));
    Object.assign(errors, R.errors);
    R.targets = targetsCheck(R, errors);
    R.notes = readFileSync("bench/NOTES.md", "utf8");
    writeFileSync(OUT, report(R, errors) + keptSections());
    return log(`rewrote ${OUT} from ${FIGURES}`);
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
          date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
          port: { sha256: createHash("sha256").update(text).digest("hex"), lines: text.toString().split("\n").length },
          ...(await compareDev({ mock, names: DEV_VARIANTS, n: P.devN, portJs: PORT_JS, steady: P.devSteady, log: (...a) => log("6.", ...a) })),
        };
        for (const W of [R.wranglerDev, R.wranglerDev.steady].filter(Boolean)) {
          for (const t of W.names) if (W.by[t].errors) errors[`dev:${t}`] = (errors[`dev:${t}`] ?? 0) + W.by[t].errors;
        }
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
  // The figures first: a fault in the report below can then be mended and rerun with BENCH_REPORT_ONLY=1.
  writeFileSync(FIGURES, JSON.stringify(R, null, 1));
  R.targets = targetsCheck(R, errors);
  try {
    R.notes = readFileSync("bench/NOTES.md", "utf8");
  } catch {}
  writeFileSync(OUT, report(R, errors) + keptSections());
  log(`wrote ${OUT} in ${f(R.seconds, 0)} s`);
  for (const t of R.targets) log(`${t.met ? "met " : "MISS"} ${t.what}: ${t.value}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
