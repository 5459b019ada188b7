// How a fresh worker warms up: sequential requests in batches, each batch's p50 latency and
// the CPU per request of workerd's main thread and of V8's background worker thread (where
// the optimizing tier compiles hot Wasm and JavaScript). Not part of `npm run bench`.
//   W=n1|ref ENS=zero|timed B=<batch size> BATCHES=<n> node bench/tierup.mjs
import { readdirSync, readFileSync } from "node:fs";
import { agent, benchEnsembles, n1Bindings, post, startMock, startWorkerd } from "./lib.mjs";
process.chdir(new URL("..", import.meta.url).pathname);
const ENS = process.env.ENS ?? "timed";
const mock = await startMock();
const ens = benchEnsembles(mock.url);
const which = process.env.W ?? "n1"; // n1, or ref (bench/reference-worker.mjs)
const w = which === "n1" ? await startWorkerd({ scriptPath: "worker/entry.mjs", bindings: n1Bindings(ens) }) : await startWorkerd({ scriptPath: "bench/reference-worker.mjs", bindings: { REF_CONFIG: JSON.stringify(ens) } });
const threads = () => {
  const out = {};
  for (const tid of readdirSync(`/proc/${w.pid}/task`)) {
    const st = readFileSync(`/proc/${w.pid}/task/${tid}/stat`, "utf8");
    const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
    const name = readFileSync(`/proc/${w.pid}/task/${tid}/comm`, "utf8").trim();
    out[name] = (out[name] ?? 0) + (Number(f[11]) + Number(f[12])) * 10;
  }
  return out;
};
const body = Buffer.from(JSON.stringify({ model: ENS, messages: [{ role: "user", content: "Why is the sky blue?" }] }));
const a = agent();
const B = Number(process.env.B ?? 25);
for (let batch = 0; batch < Number(process.env.BATCHES ?? 12); batch++) {
  const t0 = threads();
  const lat = [];
  for (let i = 0; i < B; i++) {
    const x = await post(a, `${w.url}/v1/chat/completions`, body);
    lat.push(Number(x.end - x.t0) / 1e6);
  }
  const t1 = threads();
  lat.sort((x, y) => x - y);
  console.log(`${which} requests ${batch * B}-${(batch + 1) * B}: main ${((t1.workerd - t0.workerd) / B).toFixed(2)} ms/req, V8 worker ${((t1["V8 DefaultWorke"] - t0["V8 DefaultWorke"]) / B).toFixed(2)} ms/req, p50 ${lat[B >> 1].toFixed(2)} ms`);
}
a.destroy();
await w.close();
await mock.close();
