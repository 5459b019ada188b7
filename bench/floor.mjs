// The fixed per-request cost of a workers-rs worker against the same in JavaScript, with no
// upstream calls: `node bench/floor.mjs` (builds bench/rust-floor on first use). Not part of
// `npm run bench`. Prints req/s at c=16 and workerd CPU per request (medians of 3 runs).
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import autocannon from "autocannon";
import { cpuMs, median, startWorkerd } from "./lib.mjs";

process.chdir(new URL("..", import.meta.url).pathname);
if (!existsSync("bench/rust-floor/build/index.js")) {
  execFileSync("bash", ["-c", 'source scripts/env.sh && cd bench/rust-floor && "$WORKER_BUILD_BIN" --release'], { stdio: "inherit" });
}
const targets = [
  { name: "JavaScript", w: await startWorkerd({ scriptPath: "bench/floor-worker.mjs", bindings: {} }) },
  { name: "workers-rs", w: await startWorkerd({ scriptPath: "bench/rust-floor/build/index.js", bindings: {} }) },
];
const body = JSON.stringify({ model: "x", messages: [{ role: "user", content: "Why is the sky blue?" }] });
const run = (url, duration) =>
  new Promise((res, rej) => autocannon({ url, method: "POST", body, connections: 16, duration }, (e, r) => (e ? rej(e) : res(r))));
const out = Object.fromEntries(targets.map((t) => [t.name, { rps: [], cpu: [] }]));
for (const t of targets) await run(t.w.url, 1);
for (let i = 0; i < 3; i++) {
  for (const t of targets) {
    const c0 = cpuMs(t.w.pid);
    const r = await run(t.w.url, 3);
    out[t.name].rps.push(r["2xx"] / 3);
    out[t.name].cpu.push((cpuMs(t.w.pid) - c0) / r["2xx"]);
  }
}
for (const t of targets) await t.w.close();
for (const [name, o] of Object.entries(out)) console.log(`${name}: ${median(o.rps).toFixed(0)} req/s, ${(median(o.cpu) * 1000).toFixed(0)} µs CPU/request`);
