// CPU profile of a worker under load, through workerd's inspector (V8 sampling profiler).
// Prints the functions with the most self time (Wasm functions by their Rust names when build/ was
// built with N1_KEEP_NAMES=1, scripts/build.sh; the release build has only `wasm-function[i]`).
//   node bench/profile.mjs [n1|n1-raw|reference] [json|stream] [ensemble] [seconds] [connections]
// n1 is the worker as deployed (worker/entry.mjs around build/); n1-raw the build alone;
// port N-1's original JavaScript port (its worker.js given by BENCH_PORT_JS, as in section 6).
// Ensembles (bench/lib.mjs): zero, a1024, a32768, a262144, spaced, timed, p6spaced. Not part of `npm run bench`.
import { createRequire } from "node:module";
import { writeFileSync } from "node:fs";
import autocannon from "autocannon";
import { benchEnsembles, COMPAT_DATE, n1Bindings, startMock, startWorkerd } from "./lib.mjs";
import { portConfig, preparePort } from "./wrangler-dev.mjs";

const require = createRequire(new URL("../node_modules/miniflare/package.json", import.meta.url));
const WebSocket = require("ws");

const [which = "n1", mode = "json", ensName = "zero", seconds = "5", conns = "16"] = process.argv.slice(2);
process.chdir(new URL("..", import.meta.url).pathname);

const mock = await startMock();
const ens = benchEnsembles(mock.url);
const port = 9300 + Math.floor(Math.random() * 500);
const TOKEN = "bench-port-token";
const portDir = which === "port" ? preparePort(process.env.BENCH_PORT_JS, portConfig(ens, TOKEN, ensName), { compatibilityDate: COMPAT_DATE }) : null;
const w = await startWorkerd({
  scriptPath: portDir?.script ?? (which === "n1" ? "worker/entry.mjs" : which === "n1-raw" ? "build/index.js" : "bench/reference-worker.mjs"),
  bindings: which.startsWith("n1") ? n1Bindings(ens) : portDir ? {} : { REF_CONFIG: JSON.stringify(ens) },
  ...(portDir ? { modules: false } : {}),
  inspectorPort: port,
});
const url = `${w.url}/v1/chat/completions`;
const body = JSON.stringify({ model: ensName, messages: [{ role: "user", content: "Why is the sky blue?" }], ...(mode === "stream" ? { stream: true } : {}) });
const load = (duration) =>
  new Promise((res, rej) =>
    autocannon({ url, method: "POST", headers: { "content-type": "application/json", ...(portDir ? { authorization: `Bearer ${TOKEN}` } : {}) }, body, connections: Number(conns), duration }, (e, r) => (e ? rej(e) : res(r))),
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
await w.close();
await mock.close();
portDir?.remove();

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
