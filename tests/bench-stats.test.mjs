// The statistics behind section 6's verdict in BENCHMARKS.md (issue 12): the median's
// confidence interval, the round-by-round pairing over both phases, and the check built on them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { medianCi } from "../bench/lib.mjs";
import { pairedDiff, pairedOver } from "../bench/dev-targets.mjs";
import { targetsCheck } from "../bench/report.mjs";

const range = (n) => Array.from({ length: n }, (_, i) => i);

test("medianCi: the sign test's order statistics", () => {
  // Textbook values (1-based): n = 30 → 10th and 21st, n = 50 → 18th and 33rd, n = 100 → 40th and 61st.
  assert.deepEqual(medianCi(range(30)), [9, 20]);
  assert.deepEqual(medianCi(range(50)), [17, 32]);
  assert.deepEqual(medianCi(range(100)), [39, 60]);
  // Order does not matter; below 6 values no 95 % interval exists.
  assert.deepEqual(medianCi(range(50).reverse()), [17, 32]);
  assert.ok(medianCi([1, 2, 3, 4, 5]).every(Number.isNaN));
});

test("medianCi covers the true median about 95 % of the time, whatever the distribution", () => {
  // Skewed (exponential, median ln 2), seeded so the test is repeatable.
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) + 0.5) / 2 ** 31;
  let covered = 0;
  const trials = 2000;
  for (let t = 0; t < trials; t++) {
    const [lo, hi] = medianCi(Array.from({ length: 60 }, () => -Math.log(rand())));
    if (lo <= Math.LN2 && Math.LN2 <= hi) covered++;
  }
  assert.ok(covered / trials > 0.93 && covered / trials < 0.99, `coverage ${covered / trials}`);
});

// A compareDev-shaped result: each target's p50s over the direct calls and its rounds.
function phase(n1Rounds, portRounds, n1P50 = 5, portP50 = 5) {
  const t = (rounds, p50) => ({ json: { p50, p95: p50 }, first: { p50, p95: p50 }, rounds: { json: rounds, first: rounds } });
  return {
    names: ["direct", "n1-api", "port-wd"],
    by: { direct: t([], 0), "n1-api": t(n1Rounds, n1P50), "port-wd": t(portRounds, portP50) },
  };
}

test("pairedOver pools the phases round by round and skips rounds missing on either side", () => {
  const a = phase([1, 2, null, 4], [0, 0, 0, 0]);
  const b = phase([5, 6], [1, 1]);
  const d = pairedOver([a, b], "n1-api", "port-wd", "json");
  assert.equal(d.n, 5); // 3 + 2: the null round is dropped
  assert.equal(d.median, 4); // differences 1, 2, 4, 4, 5
  assert.equal(d.faster, 0);
  assert.equal(pairedOver([a, { by: {} }], "n1-api", "port-wd", "json"), null);
});

test("pairedDiff: (a − b) − (c − d) round by round, a round missing anywhere dropped", () => {
  const by = (rounds) => ({ rounds: { tz: rounds } });
  const R = {
    by: {
      now: by([5, 6, 7, null, 9]),
      ref: by([4, 4, 4, 4, 4]),
      then: by([3, 3, 3, 3, 3]),
      refThen: by([2, 1, 2, 2, 0]),
    },
  };
  const d = pairedDiff(R, ["now", "ref", "then", "refThen"], "tz");
  // (5−4)−(3−2) = 0, (6−4)−(3−1) = 0, (7−4)−(3−2) = 2, dropped, (9−4)−(3−0) = 2
  assert.equal(d.n, 4);
  assert.equal(d.median, 1);
  assert.equal(d.faster, 0);
  assert.equal(pairedDiff(R, ["now", "ref", "then", "absent"], "tz"), null);
});

test("section 6's check: met when the CI's upper end is within 10 % of the port's added latency, not on a lone p50", () => {
  const port = range(70).map((i) => 5 + (i % 7) * 0.1);
  const check = (shift) => {
    const n1 = port.map((v, i) => v + shift + ((i * 37) % 11) * 0.1 - 0.5); // noise ±0.5 ms around the shift
    // Its p50s a little above the port's in both phases, as a level contest gives half the time.
    const W = phase(n1, port, 5.2);
    W.steady = phase(n1, port, 5.3);
    return targetsCheck({ wranglerDev: W }, {}).find((c) => c.what.includes("non-streaming: at or below the port"));
  };
  assert.equal(check(0).met, true, "level with the port");
  assert.equal(check(-1).met, true, "below it");
  assert.equal(check(0.3).met, true, "0.3 ms slower, within the margin (0.5 ms of 5 ms)");
  assert.equal(check(1).met, false, "1 ms slower");
  assert.match(check(0).value, /CI .* \(margin 0\.50\), N-1 faster in \d+ of 140; p50 ratio 1\.04× \/ 1\.06×/);
});

test("issue 12's latency bounds: each figure against its own range in the runs before the issue (0.97 ms non-streaming, 1.04 ms first token)", () => {
  const s = (p50) => ({ p50, p95: p50, p99: p50 });
  const R = (json, first) => ({
    latency: { by: { n1: { added: s(5 + json) }, reference: { added: s(5) } } },
    streaming: { by: { n1: { first: s(5 + first), chunk: s(0.3), ttfb: s(2) }, reference: { first: s(5), chunk: s(0.3), ttfb: s(2) } } },
  });
  const rows = (json, first) => targetsCheck(R(json, first), {}).filter((c) => c.what.includes("no regression (issue 12"));
  const met = (json, first) => rows(json, first).map((c) => c.met);
  assert.equal(rows(0.5, 0.5).length, 2);
  assert.deepEqual(met(0.96, 1.03), [true, true]);
  assert.deepEqual(met(0.98, 1.03), [false, true], "non-streaming over 0.97");
  assert.deepEqual(met(0.96, 1.06), [true, false], "first token over 1.04");
  assert.match(rows(0.5, 0.5)[1].what, /first content token, p50 ≤ 1\.04 ms,.*0\.67-1\.04/);
});
