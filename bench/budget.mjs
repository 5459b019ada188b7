// What budgets cost a request: one N-1 (worker/entry.mjs around build/, with the
// budget Durable Object bound as in wrangler.toml) in its own workerd against the
// bench mock, called three ways in the same run, requests interleaved:
//   anonymous  no key: nothing is counted (no Durable Object call at all);
//   key        a key without a budget: its spend is settled after the reply;
//   budget     a key with a budget: a reservation before the fan-out (one
//              round trip to the Durable Object), the settlement after the reply.
// budget − anonymous is what a budget adds. Prints a markdown section (added
// latency, time to first byte, workerd CPU per request). `node bench/budget.mjs`
// after `npm run build`; BENCH_QUICK=1 for a short run.
import http from "node:http";
import { readFileSync, writeFileSync } from "node:fs";
import { cpuMs, nowNs, percentile, sleep, startMock, startWorkerd } from "./lib.mjs";

process.chdir(new URL("..", import.meta.url).pathname);
const QUICK = process.env.BENCH_QUICK === "1";
const N = { lat: QUICK ? 20 : 60, zero: QUICK ? 100 : 300 };
const PRICE = { input: 1, output: 2 };

const mock = await startMock();
const model = (spec, name) => ({ endpoint: `${mock.url}/m/${spec}/v1/chat/completions`, model: name, max_retries: 0, price: PRICE });
const config = {
  ensembles: {
    // Panel 100/200/300 ms, summary 100 ms (streaming: 200 chunks 2 ms apart): ideal 400 ms.
    lat: { panel: [100, 200, 300].map((d, i) => model(`d${d}`, `panel-${i + 1}`)), summary: model("d100-c200-i2", "summary") },
    zero: { panel: [1, 2, 3].map((i) => model("d0", `panel-${i}`)), summary: model("d0-c10", "summary") },
  },
};
const keys = [
  { key: "bench-key-plain", name: "plain" },
  { key: "bench-key-budget", name: "budget", budget: { usd_per_day: 1e9, usd_per_month: 1e9, tokens_per_day: 1e15 } },
];
const w = await startWorkerd({
  scriptPath: "worker/entry.mjs",
  bindings: { N1_CONFIG: JSON.stringify(config), N1_API_KEYS: JSON.stringify(keys), N1_ALLOW_ANONYMOUS: "true", N1_ALLOW_INSECURE_UPSTREAMS: "true" },
  durableObjects: { N1_BUDGET: { className: "N1Budget", useSQLite: true } },
});
const url = `${w.url}/v1/chat/completions`;
const pid = w.pid;

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
function post(body, headers) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const t0 = nowNs();
    let first = null;
    const req = http.request({ agent, host: u.hostname, port: u.port, path: u.pathname, method: "POST", headers: { "content-type": "application/json", "content-length": body.length, ...headers } }, (res) => {
      const parts = [];
      res.on("data", (d) => {
        first ??= nowNs();
        parts.push(d);
      });
      res.on("end", () => resolve({ status: res.statusCode, t0, first, end: nowNs(), text: Buffer.concat(parts).toString() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

const TARGETS = [
  { name: "anonymous", headers: {} },
  { name: "key", headers: { authorization: "Bearer bench-key-plain" } },
  { name: "budget", headers: { authorization: "Bearer bench-key-budget" } },
];
const body = (ens, stream) => Buffer.from(JSON.stringify({ model: ens, max_tokens: 256, stream, messages: [{ role: "user", content: "Why is the sky blue? Answer in two sentences." }] }));
const ms = (ns) => Number(ns) / 1e6;
const res = {};
const push = (k, v) => (res[k] ??= []).push(v);

async function round(ens, stream, n, ideal) {
  for (let i = 0; i < n + 5; i++) {
    for (const t of TARGETS) {
      const c0 = cpuMs(pid);
      const r = await post(body(ens, stream), t.headers);
      if (r.status !== 200 || (stream && !r.text.includes("[DONE]"))) throw new Error(`${t.name}: ${r.status} ${r.text.slice(0, 200)}`);
      await sleep(2); // the settlement (after the reply) is part of this request's CPU
      if (i < 5) continue; // warm-up
      const key = `${ens} ${stream ? "stream" : "json"} ${t.name}`;
      push(`${key} added`, ms(r.end - r.t0) - ideal);
      push(`${key} first byte`, ms(r.first - r.t0));
      push(`${key} cpu`, cpuMs(pid) - c0);
    }
  }
}

const t0 = Date.now();
await round("zero", false, N.zero, 0);
await round("zero", true, N.zero, 0);
await round("lat", false, N.lat, 400);
await round("lat", true, N.lat, 400 + 199 * 2);
await w.close();
await mock.close();

const f = (x, d = 2) => x.toFixed(d);
const p = (k, q) => percentile(res[k], q);
const lines = [];
lines.push(`Measured by \`node bench/budget.mjs\`${QUICK ? " (BENCH_QUICK=1: a short run)" : ""} on ${new Date().toISOString().slice(0, 19)}Z in ${Math.round((Date.now() - t0) / 1000)} s: ${N.zero} requests per target and mode on the zero-delay ensemble, ${N.lat} on the 400 ms one (panel 100/200/300 ms, summary 100 ms; streaming: 200 chunks 2 ms apart), interleaved across the three targets in one workerd. CPU is the workerd process's (the worker and the Durable Object) per request.`);
lines.push("");
lines.push("| ensemble | mode | target | added p50 | p95 | first byte p50 | p95 | CPU/req p50 |");
lines.push("|---|---|---|---|---|---|---|---|");
for (const ens of ["zero", "lat"]) {
  for (const mode of ["json", "stream"]) {
    for (const t of TARGETS) {
      const k = `${ens} ${mode} ${t.name}`;
      lines.push(`| ${ens} | ${mode} | ${t.name} | ${f(p(`${k} added`, 50))} | ${f(p(`${k} added`, 95))} | ${f(p(`${k} first byte`, 50))} | ${f(p(`${k} first byte`, 95))} | ${f(p(`${k} cpu`, 50))} |`);
    }
    const d = (what, q) => p(`${ens} ${mode} budget ${what}`, q) - p(`${ens} ${mode} anonymous ${what}`, q);
    lines.push(`| ${ens} | ${mode} | **budget − anonymous** | **${f(d("added", 50))}** | ${f(d("added", 95))} | **${f(d("first byte", 50))}** | ${f(d("first byte", 95))} | ${f(d("cpu", 50))} |`);
  }
}
// Into BENCHMARKS.md (BENCH_OUT: another file) between its markers, which
// `npm run bench` keeps when it rewrites the rest of the report.
const OUT = process.env.BENCH_OUT ?? "BENCHMARKS.md";
const section = `<!-- budgets -->\n## Budgets\n\n${lines.join("\n")}\n\n${readFileSync("bench/budget-notes.md", "utf8").trim()}\n<!-- /budgets -->\n`;
const old = readFileSync(OUT, "utf8");
const marked = /<!-- budgets -->[\s\S]*<!-- \/budgets -->\n/;
writeFileSync(OUT, marked.test(old) ? old.replace(marked, section) : `${old.trimEnd()}\n\n${section}`);
console.log(section);
