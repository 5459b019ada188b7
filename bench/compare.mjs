// Side-by-side comparison of several N-1 builds (and the reference worker) in one run,
// for trying optimizations: `node bench/compare.mjs name=dir name=dir ...` where each dir
// holds a build (index.js + index_bg.wasm, e.g. a copy of build/). Interleaved rounds of
// autocannon (c=16, both modes, zero-delay mock) and sequential requests measuring the
// workerd CPU time per request at several answer sizes. Not part of `npm run bench`.
import path from "node:path";
import autocannon from "autocannon";
import { agent, cpuMs, median, post, startMock, startWorkerd } from "./lib.mjs";

process.chdir(new URL("..", import.meta.url).pathname);
const builds = process.argv.slice(2).map((a) => {
  const [name, dir] = a.split("=");
  return { name, script: path.resolve(dir, "index.js") };
});
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SECONDS = Number(process.env.SECONDS ?? 3);
const SEQ = Number(process.env.SEQ ?? 40);

const mock = await startMock();
const m = (spec, name) => ({ url: `${mock.url}/m/${spec}/v1/chat/completions`, model: name });
const n3 = (spec) => [1, 2, 3].map((i) => m(spec, `panel-${i}`));
const ens = {
  zero: { panel: n3("d0"), summary: m("d0-c10", "summary") },
  a1024: { panel: n3("s1024"), summary: m("s1024", "summary") },
  a32768: { panel: n3("s32768"), summary: m("s32768", "summary") },
  a262144: { panel: n3("s262144"), summary: m("s262144", "summary") },
};
const model = (x) => ({ endpoint: x.url, model: x.model, max_retries: 0 });
const config = JSON.stringify({ ensembles: Object.fromEntries(Object.entries(ens).map(([k, e]) => [k, { panel: e.panel.map(model), summary: model(e.summary) }])) });
const targets = [{ name: "reference", w: await startWorkerd({ scriptPath: "bench/reference-worker.mjs", bindings: { REF_CONFIG: JSON.stringify(ens) } }) }];
for (const b of builds) targets.push({ name: b.name, w: await startWorkerd({ scriptPath: b.script, bindings: { N1_CONFIG: config, N1_ALLOW_ANONYMOUS: "true" } }) });
const body = (e, stream) => JSON.stringify({ model: e, messages: [{ role: "user", content: "Why is the sky blue?" }], ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}) });
const cannon = (url, b, c, duration) =>
  new Promise((res, rej) => autocannon({ url, method: "POST", headers: { "content-type": "application/json" }, body: b, connections: c, duration }, (e, r) => (e ? rej(e) : res(r))));

const res = Object.fromEntries(targets.map((t) => [t.name, {}]));
const push = (t, k, v) => (res[t.name][k] ??= []).push(v);
for (const t of targets) await cannon(`${t.w.url}/v1/chat/completions`, body("zero", false), 16, 1);
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
for (const e of ["zero", "a32768", "a262144"]) {
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
