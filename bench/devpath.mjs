// Where the `wrangler dev` path differs from plain Miniflare: N-1 and its original JavaScript
// port, each run several ways (bench/dev-targets.mjs, VARIANT_INFO), side by side in one run,
// requests interleaved, same mock and ensemble as section 6 of `npm run bench`. Prints a
// markdown table: added latency over the direct calls (non-streaming), first streamed content
// over the direct calls, first byte, CPU per request of each process on the path. Not part of
// `npm run bench`.
//
//   BENCH_PORT_JS=/path/to/worker.js node bench/devpath.mjs [variant ...]     (N=40 rounds by default)
//
// Round-by-round differences are against port-wd, or the variant named by VS=...; e.g. this
// code against the build of another commit and the reference worker, all in plain Miniflare:
//   BENCH_BUILD_DIR=$(bash bench/build-at.sh 47fd025) VS=n1-at-mf node bench/devpath.mjs n1-mf n1-at-mf ref-mf
// DID=a:b:c:d adds (a − b) − (c − d) round by round, e.g. DID=n1-mf:ref-mf:n1-at-mf:ref-at-mf: this
// code's cost over its reference worker against that commit's over its own. WARMUP=rounds (20).
//
// Without variants: DEFAULT below (the port ones only with BENCH_PORT_JS; how to get the file:
// BENCHMARKS.md, section 6).
import path from "node:path";
import { startMock } from "./lib.mjs";
import { compareDev, failureLine, overDirect, paired, pairedDiff, VARIANT_INFO } from "./dev-targets.mjs";

process.chdir(path.resolve(new URL("..", import.meta.url).pathname));
const N = Number(process.env.N ?? 40);
// Rounds of quick requests before measuring (V8 tiers N-1's Wasm up over a few hundred requests).
const WARMUP = Number(process.env.WARMUP ?? 20);
const PORT_JS = process.env.BENCH_PORT_JS;
const DEFAULT = [
  "n1-mf", "port-mf", "n1-mf-insp", "n1-mf-rt", "port-mf-rt", "n1-mf-net-only", "n1-mf-dbg",
  "n1-wd", "port-wd", "n1-wd-direct", "port-wd-direct", "n1-wd-nolog", "n1-wd-nobind", "n1-wd-nobuild",
  "n1-wd-envnoinsp", "n1-api", "port-api",
];
let names = process.argv.slice(2);
if (!names.length) names = DEFAULT.filter((n) => PORT_JS || !n.startsWith("port"));
const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : "–");

const mock = await startMock();
try {
  const R = await compareDev({ mock, names, n: N, warmup: WARMUP, portJs: PORT_JS, log: (...a) => console.error("[devpath]", ...a) });
  console.log(
    `\n${N} rounds (${new Date().toISOString()}), each one non-streaming and one streaming request per target, interleaved. Times in ms; "over direct" = target − direct at that percentile; json overhead = wall time outside every upstream call (TensorZero-style). CPU = median ms per request: user = the workerd running the worker, proxy = wrangler's proxy workerd, node = wrangler's (or Miniflare's) Node process.\n`,
  );
  console.log(
    "| target | json over direct p50 | p95 | json overhead p50 | first content over direct p50 | p95 | first byte p50 | json: request → first call | first call → last answer (− its delay) | last answer → summary call | summary answer → reply | CPU json: user | proxy | node | CPU stream: user | proxy | node | errors |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
  for (const name of R.names) {
    const o = R.by[name];
    const d = overDirect(R, name);
    const c = (mode) => ["user", "proxy", "node"].map((k) => f(o.cpu[mode][k])).join(" | ");
    const w = o.where;
    console.log(
      `| ${name} | ${f(d.json.p50)} | ${f(d.json.p95)} | ${f(o.tz?.p50)} | ${f(d.first.p50)} | ${f(d.first.p95)} | ${f(o.ttfb.p50)} | ${f(w.before)} | ${f(w.panel)} | ${f(w.between)} | ${f(w.after)} | ${c("json")} | ${c("stream")} | ${o.errors} |`,
    );
  }
  console.log("\nStreaming, where the time to the first content goes (p50, ms): request → first call | last panel answer → summary call | first chunk's relay (arrival − send)\n");
  for (const name of R.names) {
    const s = R.by[name].streamWhere;
    if (s) console.log(`- ${name}: ${f(s.before)} | ${f(s.between)} | ${f(s.relay, 3)}`);
  }
  for (const name of R.names) for (const x of R.by[name].failures ?? []) console.log(`\nfailed: ${failureLine(name, x)}`);
  const b = R.by.direct;
  console.log(`\ndirect: json added p50 ${f(b.json.p50)} ms, first content p50 ${f(b.first.p50)} ms over the ideal ${R.ideal} ms.\n`);
  for (const name of R.names.slice(1)) console.log(`- ${name}: ${VARIANT_INFO[name]}`);
  // Round-by-round differences (as `paired` gives them) in each measure.
  const modes = (diff, below = "") =>
    [["non-streaming", "json"], ["its overhead", "tz"], ["first content", "first"]]
      .map(([label, m]) => {
        const d = diff(m);
        return `${label} ${d ? `${f(d.median)} [95 % CI ${f(d.ci[0])}, ${f(d.ci[1])}; quartiles ${f(d.q1)}, ${f(d.q3)}], ${below}${d.faster}/${d.n}` : "–"}`;
      })
      .join("; ");
  // Round by round against the port under `wrangler dev`, or the variant named by VS
  // (adjacent requests: slow spells cancel out).
  const vs = process.env.VS ?? "port-wd";
  if (R.by[vs]) {
    console.log(`\nRound by round, target − ${vs} (ms): median [its 95 % confidence interval; quartiles], rounds where the target was faster.\n`);
    for (const name of R.names.filter((x) => x !== "direct" && x !== vs)) console.log(`- ${name}: ${modes((m) => paired(R, name, vs, m))}`);
  }
  // DID=a:b:c:d prints, round by round, (a − b) − (c − d).
  if (process.env.DID) {
    const four = process.env.DID.split(":");
    console.log(`\nRound by round, (${four[0]} − ${four[1]}) − (${four[2]} − ${four[3]}) (ms): ${modes((m) => pairedDiff(R, four, m), "below zero in ")}`);
  }
} finally {
  await mock.close();
}
