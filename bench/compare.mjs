// Side-by-side comparison of several N-1 builds (and the reference worker) in one run,
// for trying optimizations: `node bench/compare.mjs name=dir name=dir ...` where each dir
// holds a build (index.js + index_bg.wasm, e.g. a copy of build/ under bench/.builds/: Miniflare
// needs the modules below the working directory). Interleaved rounds of
// autocannon (c=16, both modes, zero-delay mock) and sequential requests measuring the
// workerd CPU time per request at several answer sizes. Not part of `npm run bench`.
import path from "node:path";
import { readFileSync, writeFileSync } from "node:fs";
import autocannon from "autocannon";
import { agent, benchEnsembles, cpuMs, median, n1Bindings, post, startMock, startWorkerd } from "./lib.mjs";

process.chdir(new URL("..", import.meta.url).pathname);
// `name=dir?VAR=value&VAR2=value` adds bindings for that build (e.g. `?N1_LOG_REQUESTS=errors`).
const builds = process.argv.slice(2).map((a) => {
  const [name, rest] = [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)];
  const [dir, query = ""] = rest.split("?");
  const extra = Object.fromEntries(new URLSearchParams(query));
  // As deployed: worker/entry.mjs around the build (`?raw=1`: the build alone; `?entry=file`:
  // another entry module in that directory).
  let script = path.resolve(dir, "index.js");
  if (extra.entry) {
    script = path.resolve(dir, extra.entry);
  } else if (extra.raw !== "1") {
    script = path.resolve(dir, "entry.mjs");
    writeFileSync(script, readFileSync("worker/entry.mjs", "utf8").replaceAll('"../build/index.js"', '"./index.js"'));
  }
  delete extra.raw;
  delete extra.entry;
  return { name, script, extra };
});
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SECONDS = Number(process.env.SECONDS ?? 3);
const SEQ = Number(process.env.SEQ ?? 40);

const mock = await startMock();
const ens = benchEnsembles(mock.url);
const targets = [{ name: "reference", w: await startWorkerd({ scriptPath: "bench/reference-worker.mjs", bindings: { REF_CONFIG: JSON.stringify(ens) } }) }];
for (const b of builds) targets.push({ name: b.name, w: await startWorkerd({ scriptPath: b.script, bindings: n1Bindings(ens, b.extra) }) });
const body = (e, stream) => JSON.stringify({ model: e, messages: [{ role: "user", content: "Why is the sky blue?" }], ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}) });
const cannon = (url, b, c, duration) =>
  new Promise((res, rej) => autocannon({ url, method: "POST", headers: { "content-type": "application/json" }, body: b, connections: c, duration }, (e, r) => (e ? rej(e) : res(r))));

const res = Object.fromEntries(targets.map((t) => [t.name, {}]));
const push = (t, k, v) => (res[t.name][k] ??= []).push(v);
for (const t of targets) {
  const x = await cannon(`${t.w.url}/v1/chat/completions`, body("zero", false), 16, 1);
  if (!x["2xx"] || x.non2xx || x.errors) throw new Error(`${t.name}: warm-up failed (${x["2xx"]} ok, ${x.non2xx} non-2xx, ${x.errors} errors)`);
}
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 ? [...targets].reverse() : targets;
  for (const stream of [false, true]) {
    for (const t of order) {
      const c0 = cpuMs(t.w.pid);
      const x = await cannon(`${t.w.url}/v1/chat/completions`, body("zero", stream), 16, SECONDS);
      push(t, `rps c16 ${stream ? "stream" : "json"}`, x["2xx"] / SECONDS);
      push(t, `cpu/req c16 ${stream ? "stream" : "json"}`, (cpuMs(t.w.pid) - c0) / x["2xx"]);
      if (x.errors || x.non2xx || x.timeouts) push(t, "errors", x.errors + x.non2xx + x.timeouts);
    }
  }
}
for (const e of (process.env.SEQ_ENS ?? "zero,a32768,a262144").split(",")) {
  for (const stream of [false, true]) {
    const agents = new Map(targets.map((t) => [t.name, agent()]));
    for (let i = 0; i < SEQ; i++) {
      for (const t of targets) {
        const c0 = cpuMs(t.w.pid);
        const x = await post(agents.get(t.name), `${t.w.url}/v1/chat/completions`, Buffer.from(body(e, stream)));
        await new Promise((r) => setTimeout(r, 1));
        push(t, `cpu ${e} ${stream ? "stream" : "json"}`, cpuMs(t.w.pid) - c0);
        push(t, `lat ${e} ${stream ? "stream" : "json"}`, Number(x.end - x.t0) / 1e6);
      }
    }
    for (const a of agents.values()) a.destroy();
  }
}
for (const t of targets) await t.w.close();
await mock.close();
// A markdown table: medians; rps = requests/s (autocannon, c=16), cpu = ms of workerd CPU per
// request, lat = ms per request (sequential).
const keys = Object.keys(res.reference);
console.log(`| metric | ${targets.map((t) => t.name).join(" | ")} |`);
console.log(`|---|${targets.map(() => "---").join("|")}|`);
for (const k of keys) console.log(`| ${k} | ${targets.map((t) => (res[t.name][k] ? median(res[t.name][k]).toFixed(k.startsWith("rps") ? 0 : 2) : "-")).join(" | ")} |`);
