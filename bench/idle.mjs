// What idle time before a request does to N-1 − reference: sequential requests, interleaved,
// both workers warmed first; CPU per request (workerd, all threads) and latency, p50 of each,
// for the zero-delay ensemble back to back, the same after IDLE_MS of idle, and the timed
// ensemble (section 1's). Not part of `npm run bench` (bench/NOTES.md, "Why a lone request").
//   R=<rounds> IDLE_MS=<ms> node bench/idle.mjs
import { agent, benchEnsembles, cpuMs, median, n1Bindings, post, sleep, startMock, startWorkerd } from "./lib.mjs";

process.chdir(new URL("..", import.meta.url).pathname);
const R = Number(process.env.R ?? 40);
const IDLE_MS = Number(process.env.IDLE_MS ?? 300);
const mock = await startMock();
const ens = benchEnsembles(mock.url);
const targets = [
  { name: "reference", w: await startWorkerd({ scriptPath: "bench/reference-worker.mjs", bindings: { REF_CONFIG: JSON.stringify(ens) } }) },
  { name: "n1", w: await startWorkerd({ scriptPath: "worker/entry.mjs", bindings: n1Bindings(ens) }) },
];
const a = agent();
const body = (e) => Buffer.from(JSON.stringify({ model: e, messages: [{ role: "user", content: "Why is the sky blue?" }] }));
for (const t of targets) for (let i = 0; i < 600; i++) await post(a, `${t.w.url}/v1/chat/completions`, body("zero"));
const f = (x) => x.toFixed(2);
for (const [label, e, idle] of [["zero-delay, back to back", "zero", 0], [`zero-delay, ${IDLE_MS} ms idle before each`, "zero", IDLE_MS], ["timed", "timed", 0]]) {
  const cpu = { reference: [], n1: [] };
  const lat = { reference: [], n1: [] };
  for (let r = 0; r < R; r++) {
    for (const t of r % 2 ? [...targets].reverse() : targets) {
      if (idle) await sleep(idle);
      const c0 = cpuMs(t.w.pid);
      const t0 = performance.now();
      const x = await post(a, `${t.w.url}/v1/chat/completions`, body(e));
      if (x.status !== 200) throw new Error(`${t.name}: ${x.status}`);
      lat[t.name].push(performance.now() - t0);
      cpu[t.name].push(cpuMs(t.w.pid) - c0);
    }
  }
  const [c, l] = [cpu, lat].map((m) => [median(m.reference), median(m.n1)]);
  console.log(`${label}: CPU/req reference ${f(c[0])} n1 ${f(c[1])} (N-1 − reference ${f(c[1] - c[0])}); latency ${f(l[0])} / ${f(l[1])} (${f(l[1] - l[0])}) ms`);
}
for (const t of targets) await t.w.close();
await mock.close();
a.destroy();
