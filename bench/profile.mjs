// CPU profile of a worker under load, through workerd's inspector (V8 sampling profiler).
// Prints the functions with the most self time (wasm functions keep their Rust names).
//   node bench/profile.mjs [n1|n1-raw|reference] [json|stream] [ensemble] [seconds] [connections]
// n1 is the worker as deployed (worker/entry.mjs around build/); n1-raw the build alone.
// Ensembles: zero, a1024, a32768, a262144 (as in bench/run.mjs), spaced (200 chunks 2 ms apart). Not part of `npm run bench`.
import { createRequire } from "node:module";
import { writeFileSync } from "node:fs";
import { Miniflare, NoOpLog } from "miniflare";
import autocannon from "autocannon";
import { startMock, COMPAT_DATE } from "./lib.mjs";

const require = createRequire(new URL("../node_modules/miniflare/package.json", import.meta.url));
const WebSocket = require("ws");

const [which = "n1", mode = "json", ensName = "zero", seconds = "5", conns = "16"] = process.argv.slice(2);
process.chdir(new URL("..", import.meta.url).pathname);

const mock = await startMock();
const m = (spec, name) => ({ url: `${mock.url}/m/${spec}/v1/chat/completions`, model: name });
const n3 = (spec) => [1, 2, 3].map((i) => m(spec, `panel-${i}`));
const ens = {
  zero: { panel: n3("d0"), summary: m("d0-c10", "summary") },
  a1024: { panel: n3("s1024"), summary: m("s1024", "summary") },
  a32768: { panel: n3("s32768"), summary: m("s32768", "summary") },
  a262144: { panel: n3("s262144"), summary: m("s262144", "summary") },
  // 200 content chunks 2 ms apart: the per-chunk path of a real stream
  spaced: { panel: n3("d0"), summary: m("d0-s12800-c200-i2", "summary") },
};
const model = (x) => ({ endpoint: x.url, model: x.model, max_retries: 0 });
const n1Config = { ensembles: Object.fromEntries(Object.entries(ens).map(([k, e]) => [k, { panel: e.panel.map(model), summary: model(e.summary) }])) };
const port = 9300 + Math.floor(Math.random() * 500);
const mf = new Miniflare({
  modules: true,
  scriptPath: which === "n1" ? "worker/entry.mjs" : which === "n1-raw" ? "build/index.js" : "bench/reference-worker.mjs",
  modulesRoot: ".",
  modulesRules: [
    { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
    { type: "CompiledWasm", include: ["**/*.wasm"] },
  ],
  compatibilityDate: COMPAT_DATE,
  bindings: which.startsWith("n1") ? { N1_CONFIG: JSON.stringify(n1Config), N1_ALLOW_ANONYMOUS: "true", N1_ALLOW_INSECURE_UPSTREAMS: "true" } : { REF_CONFIG: JSON.stringify(ens) },
  host: "127.0.0.1",
  port: 0,
  cf: false,
  inspectorPort: port,
  log: new NoOpLog(),
  handleRuntimeStdio: (o, e) => (o.resume(), e.resume()),
});
const url = (await mf.ready).href + "v1/chat/completions";
const body = JSON.stringify({ model: ensName, messages: [{ role: "user", content: "Why is the sky blue?" }], ...(mode === "stream" ? { stream: true } : {}) });
const load = (duration) =>
  new Promise((res, rej) =>
    autocannon({ url, method: "POST", headers: { "content-type": "application/json" }, body, connections: Number(conns), duration }, (e, r) => (e ? rej(e) : res(r))),
  );
await load(2); // warm-up

const targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
await new Promise((r) => ws.once("open", r));
let id = 0;
const pending = new Map();
ws.on("message", (d) => {
  const msg = JSON.parse(d);
  if (pending.has(msg.id)) {
    pending.get(msg.id)(msg);
    pending.delete(msg.id);
  }
});
const send = (method, params = {}) =>
  new Promise((r) => {
    const i = ++id;
    pending.set(i, r);
    ws.send(JSON.stringify({ id: i, method, params }));
  });
await send("Profiler.enable");
await send("Profiler.setSamplingInterval", { interval: 50 });
await send("Profiler.start");
const r = await load(Number(seconds));
const { result } = await send("Profiler.stop");
ws.close();
await mf.dispose();
await mock.close();

const prof = result.profile;
writeFileSync(`/tmp/${which}-${mode}-${ensName}.cpuprofile`, JSON.stringify(prof));
const nodes = new Map(prof.nodes.map((n) => [n.id, n]));
const self = new Map();
const counts = new Map();
for (const s of prof.samples) counts.set(s, (counts.get(s) ?? 0) + 1);
let total = 0;
for (const [nid, c] of counts) {
  const n = nodes.get(nid);
  const key = `${n.callFrame.functionName || "(anonymous)"} ${n.callFrame.url ? n.callFrame.url.split("/").pop() + ":" + n.callFrame.lineNumber : ""}`;
  self.set(key, (self.get(key) ?? 0) + c);
  total += c;
}
const idle = [...self].filter(([k]) => k.startsWith("(idle)")).reduce((s, [, c]) => s + c, 0);
console.log(`${which} ${mode} ${ensName}: ${r.requests.average} req/s, ${r["2xx"]} ok; samples ${total}, busy ${(((total - idle) / total) * 100).toFixed(0)}%`);
const busy = total - idle;
for (const [k, c] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 45)) {
  console.log(`${((c / busy) * 100).toFixed(1).padStart(5)}%  ${k.slice(0, 150)}`);
}
