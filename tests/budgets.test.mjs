// Budgets through real HTTP: the worker in workerd (Miniflare) with the budget
// Durable Object, against the mock upstream (10 prompt + 5 completion tokens
// per call). Limits are set from the hand-computed cost of one request (C) and
// its reservation (R, the README's formula), so each test knows exactly how
// many requests fit.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { startMockUpstream } from "./helpers/mock-upstream.mjs";
import { startWorker, mockModel, postChat, parseSse } from "./helpers/worker.mjs";

let mock, w;
const PRICE = { input: 1, output: 2 }; // USD per million tokens, every model
const CAP = 20; // the requests' max_tokens
const BODY = { model: "b", max_tokens: CAP, messages: [{ role: "user", content: "What is 2+2?" }] };
/** One request's cost: three calls (two panel members and the summary) of 10 + 5 tokens. */
const C = 3 * (10 * PRICE.input + 5 * PRICE.output) / 1e6;
/** Its reservation (README, "Budgets"): every call at its output cap, the body's characters / 4 as input. */
function reservation(body, panel = 2) {
  const input = Math.ceil(JSON.stringify(body).length / 4);
  const answers = panel * Math.min(CAP, 8000);
  const call = (inTok, outTok) => (inTok * PRICE.input + outTok * PRICE.output) / 1e6;
  return panel * call(input, CAP) + call(input + answers + 600, CAP);
}
// What the tests send: BODY with `stream` set (false is the longer body, so the larger reservation).
const R = reservation({ ...BODY, stream: false });
const DAY1 = Date.UTC(2030, 0, 15, 23, 50); // 2030-01-15T23:50Z
const DAY2 = Date.UTC(2030, 0, 16, 0, 5);

const KEYS = {
  seq: { usd_per_day: 4 * C + R + 1e-9 }, // five requests, one after the other
  conc: { usd_per_day: 5 * R - 1e-9 }, // four reservations at once
  over: { usd_per_day: 5 * R - 1e-9 },
  day: { usd_per_day: 4 * C + R + 1e-9, usd_per_month: 1 },
  tokens: { tokens_per_day: 100 },
  alice: {},
  bob: {},
};
const keyOf = (name) => `key-${name}-000000`;
const auth = (name) => ({ authorization: `Bearer ${keyOf(name)}` });

function config() {
  const m = (name) => mockModel(mock, name, { price: PRICE, max_retries: 0 });
  return { ensembles: { b: { panel: [m("b-a"), m("b-b")], summary: m("b-s") } } };
}

function keysJson() {
  return JSON.stringify(Object.entries(KEYS).map(([name, budget]) => ({ key: keyOf(name), name, ...(Object.keys(budget).length ? { budget } : {}) })));
}

before(async () => {
  mock = await startMockUpstream();
  w = await startWorker({
    config: config(),
    bindings: { N1_API_KEYS: keysJson(), N1_ENABLE_TEST_HOOKS: "true", N1_ANONYMOUS_BUDGET: JSON.stringify({ usd_per_day: R / 2 }) },
  });
});
after(async () => {
  await w?.close();
  await mock?.close();
});
beforeEach(() => mock.reset());

async function usage(name, headers = {}) {
  const r = await fetch(`${w.url}/v1/n1/usage`, { headers: { ...auth(name), ...headers } });
  assert.equal(r.status, 200, await r.clone().text());
  return r.json();
}

const close = (a, b, what) => assert.ok(Math.abs(a - b) < 1e-9, `${what}: ${a} ≠ ${b}`);

async function send(name, { stream = false, headers = {}, body = BODY } = {}) {
  const r = await postChat(w.url, { ...body, stream }, { ...auth(name), ...headers });
  const text = await r.text();
  return { status: r.status, headers: r.headers, text, json: r.headers.get("content-type")?.includes("json") ? JSON.parse(text) : null };
}

test("sequential requests stop at the limit with 429 insufficient_quota and no upstream call, both modes", async () => {
  for (let i = 0; i < 5; i++) {
    const r = await send("seq", { stream: i % 2 === 1 });
    assert.equal(r.status, 200, r.text);
    if (i % 2 === 1) assert.ok(parseSse(r.text).events.at(-1) === "[DONE]");
  }
  const calls = mock.requests.length;
  assert.equal(calls, 15);
  for (const stream of [false, true]) {
    const r = await send("seq", { stream });
    assert.equal(r.status, 429);
    assert.equal(r.json.error.type, "insufficient_quota");
    assert.equal(r.json.error.code, "insufficient_quota");
    assert.match(r.json.error.message, /budget of [\d.]+ USD per day \(`usd_per_day`\)/);
    assert.match(r.json.error.message, /resets at \d{4}-\d\d-\d\dT00:00:00Z/);
    assert.equal(r.headers.get("x-should-retry"), "false");
  }
  assert.equal(mock.requests.length, calls, "no upstream call for a refused request");
  const u = await usage("seq");
  assert.equal(u.day.requests, 5);
  close(u.day.usd, 5 * C, "spent");
  assert.equal(u.day.input_tokens, 5 * 30);
  assert.equal(u.day.output_tokens, 5 * 15);
  close(u.day.limit_usd, KEYS.seq.usd_per_day, "limit");
});

test("the OpenAI SDK gets a 429 insufficient_quota and does not retry it", async () => {
  const logged = () => w.logs.filter((l) => / POST \/v1\/chat\/completions 429 .*key:seq/.test(l)).length;
  const before = logged();
  const client = new OpenAI({ apiKey: keyOf("seq"), baseURL: `${w.url}/v1` }); // SDK default: 2 retries
  await assert.rejects(client.chat.completions.create(BODY), (e) => e.status === 429 && e.code === "insufficient_quota" && e.type === "insufficient_quota");
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(logged() - before, 1, "one request, no retries");
});

test("20 concurrent requests: the Durable Object admits only what the limit holds in reservations", async () => {
  for (const m of ["b-a", "b-b", "b-s"]) mock.set(m, { delayMs: 400 });
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => send("conc", { stream: i % 2 === 1 })));
  const ok = results.filter((r) => r.status === 200).length;
  const refused = results.filter((r) => r.status === 429 && r.json.error.code === "insufficient_quota").length;
  assert.equal(ok + refused, 20, JSON.stringify(results.map((r) => r.status)));
  // The limit holds 4 reservations (5 R > limit); all 20 reserved while the first were in flight.
  assert.equal(ok, 4);
  assert.equal(mock.requests.length, 3 * ok, "refused requests made no upstream call");
  const u = await usage("conc");
  assert.equal(u.day.requests, ok);
  close(u.day.usd, ok * C, "spent what the admitted requests cost");
  assert.ok(u.day.usd <= KEYS.conc.usd_per_day, "never past the limit when calls cost less than reserved");
});

test("requests that cost more than reserved overspend by at most their excess (the documented bound)", async () => {
  // Each call reports 100,000 + 50,000 tokens: far beyond its reservation.
  const big = { prompt_tokens: 100_000, completion_tokens: 50_000, total_tokens: 150_000 };
  for (const m of ["b-a", "b-b", "b-s"]) mock.set(m, { delayMs: 300, usage: big });
  const results = await Promise.all(Array.from({ length: 20 }, () => send("over")));
  const ok = results.filter((r) => r.status === 200).length;
  assert.equal(ok, 4);
  const actual = 3 * (100_000 * PRICE.input + 50_000 * PRICE.output) / 1e6;
  const u = await usage("over");
  close(u.day.usd, ok * actual, "charged what they really cost");
  assert.ok(u.day.usd <= KEYS.over.usd_per_day + ok * (actual - R) + 1e-9, "limit + Σ (actual − reserved)");
  // Now over the limit: refused until the day rolls over.
  assert.equal((await send("over")).status, 429);
});

test("the day rolls over (injected clock): spending is allowed again, the month keeps counting", async () => {
  const at = (t) => ({ headers: { "x-n1-test-now": String(t) } });
  for (let i = 0; i < 5; i++) assert.equal((await send("day", at(DAY1 + i * 1000))).status, 200);
  const refused = await send("day", at(DAY1 + 60_000));
  assert.equal(refused.status, 429);
  assert.match(refused.json.error.message, /resets at 2030-01-16T00:00:00Z/);
  assert.equal((await send("day", at(DAY2))).status, 200);
  const u = await usage("day", { "x-n1-test-now": String(DAY2 + 1000) });
  assert.equal(u.day.requests, 1);
  assert.equal(u.day.resets_at, "2030-01-17T00:00:00Z");
  assert.equal(u.month.requests, 6);
  assert.equal(u.month.resets_at, "2030-02-01T00:00:00Z");
  assert.equal(u.month.limit_usd, 1);
});

test("tokens_per_day counts input and output tokens", async () => {
  const r = await send("tokens");
  assert.equal(r.status, 429);
  assert.match(r.json.error.message, /budget of 100 tokens per day \(`tokens_per_day`\)/);
  assert.equal(mock.requests.length, 0);
});

test("over budget at every front door: a 429 in the dialect's own error shape, no upstream call", async () => {
  const post = (path, body, headers = {}) => fetch(`${w.url}${path}`, { method: "POST", headers: { "content-type": "application/json", ...auth("tokens"), ...headers }, body: JSON.stringify(body) });
  const messages = [{ role: "user", content: "What is 2+2?" }];
  let r = await post("/v1/messages", { model: "b", max_tokens: CAP, messages }, { "anthropic-version": "2023-06-01" });
  assert.equal(r.status, 429);
  const anthropic = await r.json();
  assert.equal(anthropic.type, "error");
  assert.equal(anthropic.error.type, "rate_limit_error");
  assert.equal(anthropic.error.details.error_code, "insufficient_quota");
  assert.match(anthropic.error.message, /tokens_per_day/);
  r = await post("/v1/responses", { model: "b", input: "What is 2+2?", max_output_tokens: CAP, stream: true });
  assert.equal(r.status, 429);
  const openai = await r.json();
  assert.equal(openai.error.code, "insufficient_quota");
  assert.equal(openai.error.type, "insufficient_quota");
  assert.equal(mock.requests.length, 0);
});

test("GET /v1/n1/usage reports what the calling key spent; another key sees only its own", async () => {
  assert.equal((await send("alice")).status, 200);
  assert.equal((await send("alice", { stream: true })).status, 200);
  const a = await usage("alice");
  assert.equal(a.key, "alice");
  assert.deepEqual(Object.keys(a.day).sort(), ["input_tokens", "limit_tokens", "limit_usd", "output_tokens", "requests", "resets_at", "usd"]);
  assert.deepEqual(Object.keys(a.month).sort(), ["input_tokens", "limit_usd", "output_tokens", "requests", "resets_at", "usd"]);
  assert.equal(a.day.requests, 2);
  close(a.day.usd, 2 * C, "alice spent two requests");
  assert.equal(a.day.limit_usd, null, "no budget: counted, not limited");
  assert.equal(a.day.limit_tokens, null);
  assert.match(a.day.resets_at, /^\d{4}-\d\d-\d\dT00:00:00Z$/);
  assert.match(a.month.resets_at, /^\d{4}-\d\d-01T00:00:00Z$/);
  const b = await usage("bob");
  assert.equal(b.key, "bob");
  assert.equal(b.day.requests, 0);
  assert.equal(b.day.usd, 0);
});

test("GET /v1/n1/usage needs a key: 401 without one (anonymous use allowed or not) and with a wrong one", async () => {
  const none = await fetch(`${w.url}/v1/n1/usage`);
  assert.equal(none.status, 401);
  assert.equal((await none.json()).error.code, "invalid_api_key");
  const wrong = await fetch(`${w.url}/v1/n1/usage`, { headers: { authorization: "Bearer key-nobody-000000" } });
  assert.equal(wrong.status, 401);
  assert.equal((await fetch(`${w.url}/v1/n1/usage`, { method: "POST", headers: auth("alice") })).status, 405);
});

test("anonymous use shares N1_ANONYMOUS_BUDGET", async () => {
  const r = await postChat(w.url, BODY);
  assert.equal(r.status, 429);
  assert.equal((await r.json()).error.code, "insufficient_quota");
  assert.equal(mock.requests.length, 0);
});

test("without the Durable Object binding a budget is a config error (500), not silently unlimited", async () => {
  const bare = await startWorker({ config: config(), budgets: false, bindings: { N1_API_KEYS: keysJson() } });
  try {
    const r = await postChat(bare.url, BODY, auth("seq"));
    assert.equal(r.status, 500);
    const e = (await r.json()).error;
    assert.equal(e.code, "config_invalid");
    assert.match(e.message, /N1_BUDGET/);
    assert.equal(mock.requests.length, 0);
    // A key without a budget still works; there is no usage to show.
    assert.equal((await postChat(bare.url, BODY, auth("bob"))).status, 200);
    const u = await fetch(`${bare.url}/v1/n1/usage`, { headers: auth("bob") });
    assert.equal(u.status, 500);
    assert.match((await u.json()).error.message, /N1_BUDGET/);
  } finally {
    await bare.close();
  }
});

test("budget state survives a restart (Durable Object storage persisted); the clock hook needs N1_ENABLE_TEST_HOOKS", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "n1-do-"));
  const start = () => startWorker({ config: config(), persist: dir, bindings: { N1_API_KEYS: keysJson() } });
  try {
    let one = await start();
    try {
      assert.equal((await postChat(one.url, BODY, auth("alice"))).status, 200);
      // Settled (it is sent as the reply leaves) before the worker stops.
      for (let i = 0; i < 50 && (await (await fetch(`${one.url}/v1/n1/usage`, { headers: auth("alice") })).json()).day.requests < 1; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await one.close();
    }
    one = await start();
    try {
      // Without N1_ENABLE_TEST_HOOKS the injected clock is ignored: today's windows.
      const r = await fetch(`${one.url}/v1/n1/usage`, { headers: { ...auth("alice"), "x-n1-test-now": String(DAY1) } });
      const u = await r.json();
      assert.equal(u.day.requests, 1, JSON.stringify(u));
      close(u.day.usd, C, "spent before the restart");
      assert.notEqual(u.day.resets_at, "2030-01-16T00:00:00Z");
    } finally {
      await one.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("the README's budget examples work as written: N1_API_KEYS with budgets, a priced model, the wrangler.toml binding", async () => {
  const readme = fs.readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const blocks = (lang) => [...readme.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].filter((m) => m[1] === lang).map((m) => m[2]);
  const keysExample = blocks("json").find((b) => b.includes('"budget"'));
  const priceExample = blocks("json").find((b) => b.includes('"price"'));
  const toml = fs.readFileSync(new URL("../wrangler.toml", import.meta.url), "utf8");
  for (const line of blocks("toml").find((b) => b.includes("N1_BUDGET")).trim().split("\n")) assert.ok(toml.includes(line), `wrangler.toml has: ${line}`);
  for (const line of blocks("toml").find((b) => b.includes("N1_METRICS")).trim().split("\n")) assert.ok(toml.includes(`# ${line}`), `wrangler.toml has, commented: ${line}`);
  // The README's keys, and an ensemble made of its priced model (pointed at the mock).
  const model = { ...JSON.parse(priceExample), endpoint: `${mock.url}/v1`, api_key_secret: undefined };
  const keys = JSON.parse(keysExample);
  const readmeWorker = await startWorker({ config: { ensembles: { council: { panel: [model], summary: model }, quick: { panel: [], summary: model } } }, bindings: { N1_API_KEYS: JSON.stringify(keys) } });
  try {
    const as = (k) => ({ authorization: `Bearer ${k.key}` });
    const r = await postChat(readmeWorker.url, { model: "council", messages: [{ role: "user", content: "hi" }] }, as(keys[0]));
    assert.equal(r.status, 200);
    const cost = (await r.json()).n1.cost_usd;
    assert.ok(Math.abs(cost - 2 * (10 * 0.15 + 5 * 0.6) / 1e6) < 1e-12, `at the README's price: ${cost}`);
    let u;
    for (let i = 0; i < 50 && !(u?.day.requests >= 1); i++) u = await (await fetch(`${readmeWorker.url}/v1/n1/usage`, { headers: as(keys[0]) })).json();
    assert.deepEqual([u.key, u.day.limit_usd, u.month.limit_usd, u.day.requests], ["alice", 5, 100, 1]);
    const ci = await (await fetch(`${readmeWorker.url}/v1/n1/usage`, { headers: as(keys[1]) })).json();
    assert.deepEqual([ci.key, ci.day.limit_tokens, ci.day.limit_usd], ["ci", 2000000, null]);
    const bob = await (await fetch(`${readmeWorker.url}/v1/n1/usage`, { headers: as(keys[2]) })).json();
    assert.deepEqual([bob.key, bob.day.limit_usd, bob.day.limit_tokens], ["bob", null, null]);
  } finally {
    await readmeWorker.close();
  }
});
