// Metrics through real HTTP: N1_METRICS bound (Miniflare) to a stand-in whose
// writeDataPoint POSTs each point to the mock upstream, where the test reads
// them: one per upstream call and one per request, with the README's fields,
// and never a key.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { startMockUpstream } from "./helpers/mock-upstream.mjs";
import { startWorker, mockModel, postChat } from "./helpers/worker.mjs";

let mock, w;
const CLIENT_KEY = "key-metrics-secret-0001";
const PROVIDER_KEY = "sk-provider-secret-value";
const PRICE = { input: 1, output: 2 };

before(async () => {
  mock = await startMockUpstream();
  const m = (name, extra) => mockModel(mock, name, { price: PRICE, api_key_secret: "UPSTREAM_KEY", ...extra });
  w = await startWorker({
    config: { ensembles: { e: { panel: [m("m-a"), m("m-b", { max_retries: 1 }), mockModel(mock, "m-free")], summary: m("m-s") } } },
    metricsUrl: `${mock.url}/metrics`,
    bindings: { N1_API_KEYS: JSON.stringify([{ key: CLIENT_KEY, name: "team-a" }]), UPSTREAM_KEY: PROVIDER_KEY },
  });
});
after(async () => {
  await w?.close();
  await mock?.close();
});
beforeEach(() => mock.reset());

/** The data points received so far. */
const points = () => mock.requests.filter((r) => r.path === "/metrics" && r.body).map((r) => r.body);

const CALL_BLOBS = ["kind", "ensemble", "model", "provider", "status", "key", "role"];
const CALL_DOUBLES = ["latency_ms", "attempts", "input_tokens", "output_tokens", "cached_tokens", "cost_usd", "priced", "estimated", "http_status"];
const named = (p, blobs, doubles) => ({ ...Object.fromEntries(blobs.map((k, i) => [k, p.blobs[i]])), ...Object.fromEntries(doubles.map((k, i) => [k, p.doubles[i]])) });

for (const stream of [false, true]) {
  test(`one data point per upstream call and one per request (stream: ${stream}), no secret in any`, async () => {
    mock.set("m-b", [{ status: 503 }, {}]); // retried once
    mock.set("m-s", { delayMs: 30 });
    const r = await postChat(w.url, { model: "e", stream, messages: [{ role: "user", content: "hi" }] }, { authorization: `Bearer ${CLIENT_KEY}` });
    assert.equal(r.status, 200);
    await r.text();
    await mock.waitFor(() => points().length >= 5, 5000);
    await new Promise((res) => setTimeout(res, 100));
    const all = points();
    assert.equal(all.length, 5, JSON.stringify(all));
    for (const p of all) {
      assert.equal(p.indexes.length, 1);
      assert.equal(p.indexes[0], "e");
      const text = JSON.stringify(p);
      assert.ok(!text.includes(CLIENT_KEY) && !text.includes(PROVIDER_KEY), `no key in ${text}`);
      assert.ok(!text.includes("hi\""), "no request text");
    }
    const calls = all.filter((p) => p.blobs[0] === "call").map((p) => named(p, CALL_BLOBS, CALL_DOUBLES));
    assert.equal(calls.length, 4);
    const by = Object.fromEntries(calls.map((c) => [c.model, c]));
    for (const c of calls) {
      assert.equal(c.ensemble, "e");
      assert.equal(c.provider, "openai");
      assert.equal(c.status, "ok");
      assert.equal(c.key, "team-a");
      assert.equal(c.input_tokens, 10);
      assert.equal(c.output_tokens, 5);
      assert.ok(c.latency_ms >= 0);
      assert.equal(c.http_status, 200);
      assert.equal(c.estimated, 0);
    }
    assert.equal(by["m-s"].role, "summary");
    assert.equal(by["m-a"].role, "panel");
    assert.ok(by["m-s"].latency_ms >= 25, `the summary's latency: ${by["m-s"].latency_ms}`);
    assert.equal(by["m-b"].attempts, 2);
    assert.equal(by["m-a"].attempts, 1);
    assert.equal(by["m-a"].cost_usd, (10 * 1 + 5 * 2) / 1e6);
    assert.deepEqual([by["m-free"].priced, by["m-free"].cost_usd, by["m-a"].priced], [0, 0, 1]);
    const req = all.find((p) => p.blobs[0] === "request");
    assert.deepEqual(req.blobs, ["request", "e", "chat", stream ? "stream" : "json", "ok", "team-a"]);
    const [latency, n, input, output, cost, priced] = req.doubles;
    assert.ok(latency >= 25);
    assert.deepEqual([n, input, output, priced], [4, 40, 20, 0]);
    assert.equal(cost, 3 * (10 * 1 + 5 * 2) / 1e6, "the priced calls' cost");
  });
}

test("a failed request still writes its calls and its outcome", async () => {
  for (const m of ["m-a", "m-b", "m-free"]) mock.set(m, { status: 400 });
  const r = await postChat(w.url, { model: "e", messages: [{ role: "user", content: "hi" }] });
  assert.equal(r.status, 502);
  await mock.waitFor(() => points().some((p) => p.blobs[0] === "request"), 5000);
  const req = points().find((p) => p.blobs[0] === "request");
  assert.deepEqual(req.blobs, ["request", "e", "chat", "json", "panel_failed", "anonymous"]);
  const calls = points().filter((p) => p.blobs[0] === "call");
  assert.equal(calls.length, 3);
  assert.ok(calls.every((p) => p.blobs[4] === "refused" && p.doubles[8] === 400 && p.doubles[5] === 0));
});

test("without the binding nothing is written and nothing changes", async () => {
  const plain = await startWorker({ config: { ensembles: { e: { panel: [mockModel(mock, "p-a")], summary: mockModel(mock, "p-s") } } } });
  try {
    const r = await postChat(plain.url, { model: "e", messages: [{ role: "user", content: "hi" }] });
    assert.equal(r.status, 200);
    await new Promise((res) => setTimeout(res, 200));
    assert.equal(points().length, 0);
  } finally {
    await plain.close();
  }
});

test("the README's table of the data points' columns matches what is written", () => {
  const readme = fs.readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const rows = Object.fromEntries([...readme.matchAll(/^\| `(index1|blob\d+|double\d+)` \|([^|]*)\|([^|]*)\|$/gm)].map((m) => [m[1], [m[2].trim(), m[3].trim()]]));
  const mention = (col, which, words) => assert.match(rows[col]?.[which] ?? "", new RegExp(words, "i"), `${col} (${which ? "request" : "call"})`);
  // The names the tests above give the positions.
  const call = { kind: "`call`", ensemble: "ensemble", model: "^model", provider: "provider", status: "status", key: "key name", role: "role", latency_ms: "latency", attempts: "attempts", input_tokens: "input tokens", output_tokens: "output tokens", cached_tokens: "cached", cost_usd: "cost, USD", priced: "had a price", estimated: "estimated", http_status: "HTTP status" };
  CALL_BLOBS.forEach((k, i) => mention(`blob${i + 1}`, 0, call[k]));
  CALL_DOUBLES.forEach((k, i) => mention(`double${i + 1}`, 0, call[k]));
  const request = ["`request`", "ensemble", "dialect", "`json` or `stream`", "outcome", "key name"];
  request.forEach((w, i) => mention(`blob${i + 1}`, 1, w));
  ["latency", "calls made", "input tokens", "output tokens", "cost, USD", "every call had a price"].forEach((w, i) => mention(`double${i + 1}`, 1, w));
  mention("index1", 0, "ensemble");
});
