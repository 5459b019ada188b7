// What the panel's streaming buys a client (issue 15), measured on N-1 (worker/entry.mjs
// around build/) in workerd against the bench mock, as a streaming client sees it:
//   straggler  panel 0.3 / 0.4 / 8 s + a 0.1 s summary, min_panel 2: time to the
//              first content token with the straggler cutoff ({"factor": 2,
//              "min_ms": 1000}: the slow member is cut 1 s into the panel) and
//              without it (the panel waits for the 8 s member);
//   live text  panel members that stream their answers over ~1 s, `progress` on:
//              time to the first visible panel text, as `panel_delta` events
//              carry it while the members answer, against the `panel_member`
//              event that carries a member's whole answer once it finished
//              (all a client could show before panel calls were streamed).
// Prints a markdown section and puts it into BENCHMARKS.md between its markers
// (`npm run bench` runs it after bench/run.mjs and keeps the section).
// `node bench/panel.mjs` after `npm run build`; BENCH_QUICK=1 for a short run.
import http from "node:http";
import { readFileSync, writeFileSync } from "node:fs";
import { nowNs, percentile, startMock, startWorkerd } from "./lib.mjs";

process.chdir(new URL("..", import.meta.url).pathname);
const QUICK = process.env.BENCH_QUICK === "1";
const N = { straggler: QUICK ? 2 : 5, live: QUICK ? 5 : 20 };
const STRAGGLER = { factor: 2, min_ms: 1000 };

const mock = await startMock();
const model = (spec, name) => ({ endpoint: `${mock.url}/m/${spec}/v1/chat/completions`, model: name, max_retries: 0 });
// Each panel member streams 5 chunks 10 ms apart once its delay is over.
const slowPanel = ["d300-c5-i10", "d400-c5-i10", "d8000-c5-i10"].map((s, i) => model(s, `panel-${i + 1}`));
const summary = model("d100-c10-i5", "summary");
const config = {
  ensembles: {
    nocut: { panel: slowPanel, summary, min_panel: 2 },
    cut: { panel: slowPanel, summary, min_panel: 2, straggler: STRAGGLER },
    // 2000 characters in 40 chunks 25 ms apart: the first text after 50 ms, the whole answer after ~1 s.
    live: { panel: [1, 2, 3].map((i) => model("d50-s2000-c40-i25", `panel-${i}`)), summary: model("d0-c10", "summary"), progress: true },
  },
};
const n1 = await startWorkerd({
  scriptPath: "worker/entry.mjs",
  bindings: { N1_CONFIG: JSON.stringify(config), N1_ALLOW_ANONYMOUS: "true", N1_ALLOW_INSECURE_UPSTREAMS: "true" },
});
const url = new URL(`${n1.url}/v1/chat/completions`);
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

/** One streamed request; the time (ms from sending) of the first event of each kind. */
function stream(ens) {
  const body = Buffer.from(JSON.stringify({ model: ens, stream: true, messages: [{ role: "user", content: "Why is the sky blue?" }] }));
  return new Promise((resolve, reject) => {
    const t0 = nowNs();
    const at = {};
    const mark = (k) => (at[k] ??= Number(nowNs() - t0) / 1e6);
    let buf = "";
    let n1 = null;
    const req = http.request(
      { agent, host: url.hostname, port: url.port, path: url.pathname, method: "POST", headers: { "content-type": "application/json", "content-length": body.length } },
      (res) => {
        res.setEncoding("utf8");
        res.on("data", (d) => {
          buf += d;
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const frame = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            const data = frame.startsWith("data: ") ? frame.slice(6) : null;
            if (!data || data === "[DONE]") continue;
            const c = JSON.parse(data);
            const p = c.n1_progress;
            if (p?.type === "panel_delta") mark("delta");
            else if (p?.type === "panel_member" && p.content) mark("member");
            else if (!p && c.choices?.[0]?.delta?.content) mark("content");
            if (c.n1) n1 = c.n1;
          }
        });
        res.on("end", () => (res.statusCode === 200 && n1 ? resolve({ ...at, end: Number(nowNs() - t0) / 1e6, n1 }) : reject(new Error(`${ens}: ${res.statusCode} ${buf.slice(0, 300)}`))));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

const t0 = Date.now();
const res = {};
const push = (k, v) => (res[k] ??= []).push(v);
await stream("live"); // warm-up
for (let i = 0; i < N.straggler; i++) {
  for (const ens of ["cut", "nocut"]) {
    const r = await stream(ens);
    push(`${ens} content`, r.content);
    push(`${ens} end`, r.end);
    push(`${ens} panel_ok`, r.n1.panel_ok);
    if (ens === "cut" && (r.n1.panel_end !== "straggler" || r.n1.panel[2].status !== "cancelled")) throw new Error(`cut: the straggler was not cut: ${JSON.stringify(r.n1)}`);
  }
}
for (let i = 0; i < N.live; i++) {
  const r = await stream("live");
  push("delta", r.delta);
  push("member", r.member);
}
agent.destroy();
await n1.close();
await mock.close();

const f = (x, d = 0) => x.toFixed(d);
const p = (k, q = 50) => percentile(res[k], q);
const lines = [];
lines.push(
  `Measured by \`node bench/panel.mjs\`${QUICK ? " (BENCH_QUICK=1: a short run)" : ""} on ${new Date().toISOString().slice(0, 19)}Z in ${Math.round((Date.now() - t0) / 1000)} s, one N-1 in workerd, streaming requests one at a time.`,
);
lines.push("");
lines.push(`**A straggler** (panel members answer after 0.3, 0.4 and 8 s, each streaming 5 chunks 10 ms apart; summary 0.1 s; \`min_panel: 2\`; ${N.straggler} requests each, interleaved):`);
lines.push("");
lines.push("| ensemble | first content token p50 | max | whole reply p50 | panel answers used |");
lines.push("|---|---|---|---|---|");
for (const [ens, what] of [
  ["cut", `\`straggler: ${JSON.stringify(STRAGGLER).replace(/"/g, "").replace(/:/g, ": ").replace(/,/g, ", ")}\``],
  ["nocut", "no cutoff (the default)"],
]) {
  lines.push(`| ${what} | **${f(p(`${ens} content`))} ms** | ${f(p(`${ens} content`, 100))} ms | ${f(p(`${ens} end`))} ms | ${p(`${ens} panel_ok`)} of 3 |`);
}
lines.push("");
lines.push(
  `With the cutoff the answer starts ${f(p("nocut content") - p("cut content"))} ms sooner (p50): the 8 s member is cut at max(1000 ms, 2 × ~400 ms) into the panel, and the summary synthesizes the two answers that came in.`,
);
lines.push("");
lines.push(`**Panel text as it comes** (three members each streaming 2000 characters in 40 chunks 25 ms apart after a 50 ms delay; \`progress: true\`; ${N.live} requests):`);
lines.push("");
lines.push("| first visible panel text | p50 | p95 |");
lines.push("|---|---|---|");
lines.push(`| \`panel_delta\` (streamed panel calls, now) | **${f(p("delta"))} ms** | ${f(p("delta", 95))} ms |`);
lines.push(`| \`panel_member\` with the whole answer (all there was before) | ${f(p("member"))} ms | ${f(p("member", 95))} ms |`);
lines.push("");
lines.push(
  `A chat page shows the panel's first words ${f(p("member") - p("delta"))} ms sooner (p50). Deltas are coalesced to at most one event per member per 100 ms, so the first one comes up to 100 ms after the member's first token.`,
);
const OUT = process.env.BENCH_OUT ?? "BENCHMARKS.md";
const section = `<!-- panel -->\n## Streamed panel and straggler cutoff\n\n${lines.join("\n")}\n<!-- /panel -->\n`;
const old = readFileSync(OUT, "utf8");
const marked = /<!-- panel -->[\s\S]*<!-- \/panel -->\n/;
writeFileSync(OUT, marked.test(old) ? old.replace(marked, section) : `${old.trimEnd()}\n\n${section}`);
console.log(section);
