// The core endpoint through real HTTP: the worker in workerd, a mock upstream,
// the official openai client and raw fetch.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startMockUpstream } from "./helpers/mock-upstream.mjs";
import { startWorker, mockModel, postChat, parseSse } from "./helpers/worker.mjs";

const KEYS = { A_KEY: "sk-test-aaaa-1111", B_KEY: "sk-test-bbbb-2222", S_KEY: "sk-test-ssss-3333" };
let mock, w, client;

function config() {
  const m = (name, extra) => mockModel(mock, name, extra);
  return {
    default_ensemble: "council",
    models: {
      a: m("panel-a", { api_key_secret: "A_KEY", temperature: 0.4 }),
      b: m("panel-b", { api_key_secret: "B_KEY" }),
      s: m("summary-s", { api_key_secret: "S_KEY" }),
    },
    ensembles: {
      council: { description: "three models", panel: ["a", "b", m("panel-c")], summary: "s" },
      slow: { panel: [m("slow-1"), m("slow-2"), m("slow-3")], summary: m("slow-summary") },
      failing: { panel: [m("fail-1", { api_key_secret: "A_KEY" }), m("fail-2")], summary: "s" },
      wide: { panel: Array.from({ length: 9 }, (_, i) => m(`wide-${i}`)), summary: m("wide-summary") },
      framing: { panel: [m("frame-p")], summary: m("frame-s") },
      custom: { panel: [m("custom-p")], summary: m("custom-s"), synthesis_prompt: "MERGE-THESE-ANSWERS" },
      capped: { panel: [m("cap-long"), m("cap-short")], summary: m("cap-s"), max_answer_chars: 100 },
    },
  };
}

before(async () => {
  mock = await startMockUpstream();
  w = await startWorker({ config: config(), bindings: KEYS });
  client = new OpenAI({ apiKey: "not-checked-yet", baseURL: `${w.url}/v1`, maxRetries: 0 });
});
after(async () => {
  await w?.close();
  await mock?.close();
});
beforeEach(() => mock.reset());

const user = (content) => [{ role: "user", content }];

test("non-streaming reply through the openai client: synthesized answer, ensemble name, summed usage, n1 metadata", async () => {
  mock.set("summary-s", { text: "the synthesis", usage: { prompt_tokens: 100, completion_tokens: 20, total_tokens: 120 } });
  const r = await client.chat.completions.create({ model: "council", messages: user("What is 2+2?") });
  assert.match(r.id, /^chatcmpl-[A-Za-z0-9]{20,}$/);
  assert.equal(r.object, "chat.completion");
  assert.equal(r.model, "council");
  assert.ok(Math.abs(r.created - Date.now() / 1000) < 60);
  assert.equal(r.choices[0].message.role, "assistant");
  assert.equal(r.choices[0].message.content, "the synthesis");
  assert.equal(r.choices[0].finish_reason, "stop");
  // 3 panel calls x 15 + summary 120
  assert.deepEqual(r.usage, { prompt_tokens: 130, completion_tokens: 35, total_tokens: 165 });
  const n1 = r.n1;
  assert.equal(n1.summary.model, "summary-s");
  assert.deepEqual(n1.panel.map((p) => [p.model, p.status]), [["panel-a", "ok"], ["panel-b", "ok"], ["panel-c", "ok"]]);
  for (const p of n1.panel) {
    assert.equal(typeof p.latency_ms, "number");
    assert.equal(p.usage.total_tokens, 15);
  }
});

test("absent model selects the default ensemble; ids are unique", async () => {
  const r1 = await postChat(w.url, { messages: user("hi") });
  const r2 = await postChat(w.url, { messages: user("hi") });
  const [b1, b2] = [await r1.json(), await r2.json()];
  assert.equal(b1.model, "council");
  assert.notEqual(b1.id, b2.id);
  assert.equal(r1.headers.get("x-n1-panel"), "3/3");
});

test("streaming through the openai client with include_usage", async () => {
  mock.set("summary-s", { text: "Streamed synthesis, ünïcödé 🎉 included.", chunks: 6 });
  const stream = await client.chat.completions.create({
    model: "council",
    messages: user("hi"),
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  const chunks = [];
  for await (const c of stream) {
    chunks.push(c);
    text += c.choices[0]?.delta?.content ?? "";
  }
  assert.equal(text, "Streamed synthesis, ünïcödé 🎉 included.");
  const ids = new Set(chunks.map((c) => c.id));
  assert.equal(ids.size, 1);
  assert.match([...ids][0], /^chatcmpl-/);
  assert.ok(chunks.every((c) => c.model === "council" && c.object === "chat.completion.chunk"));
  assert.equal(chunks[0].choices[0].delta.role, "assistant");
  const finish = chunks.find((c) => c.choices[0]?.finish_reason);
  assert.equal(finish.choices[0].finish_reason, "stop");
  assert.equal(finish.n1.panel.length, 3);
  const last = chunks.at(-1);
  assert.equal(last.choices.length, 0);
  assert.deepEqual(last.usage, { prompt_tokens: 40, completion_tokens: 20, total_tokens: 60 });
  // The summary model was asked to stream.
  const s = mock.requestsFor("summary-s")[0];
  assert.equal(s.body.stream, true);
});

test("streaming without include_usage sends no usage chunk and ends with [DONE]", async () => {
  const r = await postChat(w.url, { stream: true, messages: user("hi") });
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /^text\/event-stream/);
  const { events } = parseSse(await r.text());
  assert.equal(events.at(-1), "[DONE]");
  assert.ok(events.slice(0, -1).every((e) => e.choices.length === 1), "no usage-only chunk");
  assert.ok(events.slice(0, -1).every((e) => e.usage === undefined));
});

test("fan-out is parallel: three 1 s panel models answer in well under 2 s", async () => {
  for (const m of ["slow-1", "slow-2", "slow-3"]) mock.set(m, { delayMs: 1000 });
  const t0 = Date.now();
  const r = await postChat(w.url, { model: "slow", messages: user("hi") });
  const elapsed = Date.now() - t0;
  assert.equal(r.status, 200);
  assert.ok(elapsed < 1700, `took ${elapsed} ms`);
  const starts = ["slow-1", "slow-2", "slow-3"].map((m) => mock.requestsFor(m)[0].startedAt);
  assert.ok(Math.max(...starts) - Math.min(...starts) < 300, "all three started together");
});

test("never more than 6 panel calls in flight; the rest are queued, not dropped", async () => {
  for (let i = 0; i < 9; i++) mock.set(`wide-${i}`, { delayMs: 300 });
  const r = await postChat(w.url, { model: "wide", messages: user("hi") });
  assert.equal(r.status, 200);
  const calls = mock.requests.filter((q) => q.model.startsWith("wide-") && q.model !== "wide-summary");
  assert.equal(calls.length, 9);
  let maxOpen = 0;
  for (const c of calls) {
    const open = calls.filter((o) => o.startedAt <= c.startedAt && o.endedAt > c.startedAt).length;
    maxOpen = Math.max(maxOpen, open);
  }
  assert.equal(maxOpen, 6);
  assert.equal((await r.json()).n1.panel_ok, 9);
});

test("the summary request holds the conversation and every successful panel answer; each upstream gets its own key", async () => {
  mock.set("panel-a", { text: "ALPHA-ANSWER" });
  mock.set("panel-b", { status: 500 });
  mock.set("panel-c", { text: "GAMMA-ANSWER" });
  const messages = [
    { role: "system", content: "Be brief." },
    { role: "user", content: "first question" },
    { role: "assistant", content: "first reply" },
    { role: "user", content: "second question" },
  ];
  const r = await postChat(w.url, { model: "council", messages });
  assert.equal(r.status, 200);
  const body = await r.json();
  assert.equal(body.n1.panel[1].status, "error");
  assert.equal(body.n1.panel[1].error.status, 500);
  assert.equal(r.headers.get("x-n1-panel"), "2/3");
  assert.equal(r.headers.get("x-n1-degraded"), "true");

  const s = mock.requestsFor("summary-s")[0];
  const system = s.body.messages[0];
  assert.equal(system.role, "system");
  assert.match(system.content, /ALPHA-ANSWER/);
  assert.match(system.content, /GAMMA-ANSWER/);
  assert.doesNotMatch(system.content, /panel-a|panel-c/, "answers are anonymous");
  assert.deepEqual(s.body.messages.slice(1), messages);
  // Panel members see the conversation as sent.
  assert.deepEqual(mock.requestsFor("panel-a")[0].body.messages, messages);

  assert.equal(mock.requestsFor("panel-a")[0].headers.authorization, `Bearer ${KEYS.A_KEY}`);
  assert.equal(mock.requestsFor("panel-b")[0].headers.authorization, `Bearer ${KEYS.B_KEY}`);
  assert.equal(mock.requestsFor("panel-c")[0].headers.authorization, undefined);
  assert.equal(s.headers.authorization, `Bearer ${KEYS.S_KEY}`);
});

test("client parameters and unknown fields are forwarded; configured temperature applies only when the client sends none", async () => {
  const extra = {
    max_tokens: 77,
    top_p: 0.9,
    stop: ["END"],
    seed: 42,
    presence_penalty: 0.5,
    frequency_penalty: 0.25,
    response_format: { type: "text" },
    user: "user-123",
    vendor_extension: { keep: ["me"] },
  };
  await postChat(w.url, { model: "council", messages: user("x"), ...extra });
  for (const m of ["panel-a", "panel-b", "summary-s"]) {
    const b = mock.requestsFor(m)[0].body;
    for (const [k, v] of Object.entries(extra)) assert.deepEqual(b[k], v, `${m}.${k}`);
  }
  assert.equal(mock.requestsFor("panel-a")[0].body.temperature, 0.4);
  assert.equal(mock.requestsFor("panel-b")[0].body.temperature, undefined);
  assert.equal(mock.requestsFor("panel-a")[0].body.model, "panel-a");

  mock.reset();
  await postChat(w.url, { model: "council", messages: user("x"), temperature: 1.3 });
  assert.equal(mock.requestsFor("panel-a")[0].body.temperature, 1.3);
});

test("a custom synthesis prompt replaces the default", async () => {
  await postChat(w.url, { model: "custom", messages: user("x") });
  const sys = mock.requestsFor("custom-s")[0].body.messages[0].content;
  assert.ok(sys.startsWith("MERGE-THESE-ANSWERS"), sys);
});

test("all panel models failing: 502 listing each model's failure, no summary call, no secret", async () => {
  mock.set("fail-1", { status: 401, errorBody: { error: { message: `Incorrect API key provided: ${KEYS.A_KEY}` } } });
  mock.set("fail-2", { fault: "malformed-json" });
  const r = await postChat(w.url, { model: "failing", messages: user("x") });
  assert.equal(r.status, 502);
  assert.equal(r.headers.get("content-type"), "application/json");
  const text = await r.text();
  assert.ok(!text.includes(KEYS.A_KEY), "the upstream's echo of the key is redacted");
  const { error } = JSON.parse(text);
  assert.equal(error.type, "upstream_error");
  assert.equal(error.code, "panel_failed");
  assert.match(error.message, /fail-1 \(HTTP 401\)/);
  // Panel calls are streamed: a malformed reply is a malformed stream.
  assert.match(error.message, /fail-2 \(HTTP 200\): The panel model's stream was malformed/);
  assert.deepEqual(error.failures.map((f) => f.model), ["fail-1", "fail-2"]);
  assert.equal(mock.requestsFor("summary-s").length, 0);
});

test("all panel models failing while streaming: an error event, then [DONE]", async () => {
  mock.set("fail-1", { status: 503 });
  mock.set("fail-2", { status: 500 });
  const r = await postChat(w.url, { model: "failing", stream: true, messages: user("x") });
  assert.equal(r.status, 200);
  const { events } = parseSse(await r.text());
  assert.equal(events[0].choices[0].delta.role, "assistant");
  assert.equal(events.at(-2).error.code, "panel_failed");
  assert.match(events.at(-2).error.message, /fail-1 \(HTTP 503\)/);
  assert.equal(events.at(-1), "[DONE]");
});

test("summary failing: 502 summary_failed naming the summary model", async () => {
  mock.set("summary-s", { status: 500 });
  const r = await postChat(w.url, { model: "council", messages: user("x") });
  assert.equal(r.status, 502);
  const { error } = await r.json();
  assert.equal(error.code, "summary_failed");
  assert.match(error.message, /summary-s \(HTTP 500\)/);
});

test("SSE framing: CRLF, comments, events split mid-UTF-8 and coalesced reads all relay exactly", async () => {
  const text = "Ça va? 世界 🎉 — done.";
  for (const shape of [
    { lineEnding: "\r\n", fragment: true, comments: true },
    { coalesce: true },
    { lineEnding: "\r\n", coalesce: true, comments: true },
    { fragment: true },
  ]) {
    mock.reset();
    mock.set("frame-s", { text, chunks: 5, ...shape });
    const r = await postChat(w.url, { model: "framing", stream: true, messages: user("x") });
    const { events } = parseSse(await r.text());
    const got = events.filter((e) => e !== "[DONE]").map((e) => e.choices?.[0]?.delta?.content ?? "").join("");
    assert.equal(got, text, JSON.stringify(shape));
    assert.equal(events.at(-1), "[DONE]");
    assert.ok(!events.some((e) => e.error), JSON.stringify(shape));
  }
});

test("chunks that carry `\"error\": null` (as some providers send on every chunk) are relayed as a normal answer", async () => {
  mock.set("frame-s", { text: "fine answer", chunks: 3, nullError: true });
  const r = await postChat(w.url, { model: "framing", stream: true, messages: user("x") });
  const { events } = parseSse(await r.text());
  assert.ok(!events.some((e) => e.error), JSON.stringify(events));
  assert.equal(events.map((e) => e.choices?.[0]?.delta?.content ?? "").join(""), "fine answer");
  assert.equal(events.at(-1), "[DONE]");
});

test("a runaway panel answer is cut to max_answer_chars in the synthesis prompt, and marked in the prompt and in n1", async () => {
  mock.set("cap-long", { text: "A".repeat(100) + "B".repeat(400) });
  mock.set("cap-short", { text: "short answer" });
  const body = await (await postChat(w.url, { model: "capped", messages: user("x") })).json();
  const system = mock.requestsFor("cap-s")[0].body.messages[0].content;
  assert.ok(system.includes("A".repeat(100)), system);
  assert.ok(!system.includes("B"), "nothing past the cap reaches the summary model");
  assert.match(system, /this answer was cut here/);
  assert.ok(system.includes("short answer"));
  assert.equal(body.n1.panel[0].truncated, true);
  assert.equal(body.n1.panel[1].truncated, undefined);
});

test("GET /v1/models lists the ensembles in OpenAI list format", async () => {
  const list = await client.models.list();
  const ids = list.data.map((m) => m.id).sort();
  assert.deepEqual(ids, ["capped", "council", "custom", "failing", "framing", "slow", "wide"]);
  const council = list.data.find((m) => m.id === "council");
  assert.equal(council.object, "model");
  assert.equal(council.n1.panel_size, 3);
  assert.equal(council.n1.summary, "summary-s");
  assert.equal(council.n1.description, "three models");
  // The default ensemble (what a request without `model` gets) is marked, and only it.
  assert.deepEqual(list.data.filter((m) => m.n1.default).map((m) => m.id), ["council"]);
});

test("GET /v1/models/{id} (the SDKs' models.retrieve) returns one ensemble; an unknown id is a 404 model_not_found", async () => {
  const m = await client.models.retrieve("council");
  assert.equal(m.id, "council");
  assert.equal(m.object, "model");
  assert.equal(m.owned_by, "n1");
  assert.equal(m.n1.summary, "summary-s");
  assert.equal(m.n1.default, true);
  await expectError(await fetch(`${w.url}/v1/models/no-such-ensemble`), 404, { code: "model_not_found", param: "model" });
  await expectError(await fetch(`${w.url}/v1/models/council`, { method: "DELETE" }), 405, { code: "method_not_allowed" });
  await assert.rejects(client.models.retrieve("nope"), (e) => e.status === 404);
});

async function expectError(resp, status, { param, code, type = "invalid_request_error" } = {}) {
  assert.equal(resp.status, status);
  assert.equal(resp.headers.get("content-type"), "application/json");
  const body = await resp.json();
  assert.equal(typeof body.error.message, "string");
  assert.ok(body.error.message.length > 10);
  assert.equal(body.error.type, type);
  assert.ok("param" in body.error && "code" in body.error);
  if (param !== undefined) assert.equal(body.error.param, param);
  if (code !== undefined) assert.equal(body.error.code, code);
  return body.error;
}

test("bad requests get 400 OpenAI errors and never reach an upstream", async () => {
  const cases = [
    ["{not json", null, "invalid_json"],
    [JSON.stringify([1, 2]), null],
    [{}, "messages"],
    [{ messages: [] }, "messages"],
    [{ messages: "hello" }, "messages"],
    [{ messages: [{ content: "x" }] }, "messages[0].role"],
    [{ messages: [{ role: "robot", content: "x" }] }, "messages[0].role"],
    [{ messages: [{ role: "user", content: 42 }] }, "messages[0].content"],
    [{ messages: [{ role: "user", content: { text: "x" } }] }, "messages[0].content"],
    [{ messages: user("x"), temperature: "warm" }, "temperature"],
    [{ messages: user("x"), max_tokens: "ten" }, "max_tokens"],
    [{ messages: user("x"), stream: "yes" }, "stream"],
    [{ messages: user("x"), stop: [1, 2] }, "stop"],
    [{ messages: user("x"), model: 5 }, "model"],
    [{ messages: user("x"), n: 2 }, "n", "unsupported_value"],
  ];
  for (const [body, param, code] of cases) {
    const r = await postChat(w.url, body);
    await expectError(r, 400, { param, code });
  }
  assert.equal(mock.requests.length, 0);
});

test("unknown ensemble: 404 model_not_found", async () => {
  const err = await expectError(await postChat(w.url, { model: "gpt-17", messages: user("x") }), 404, {
    param: "model",
    code: "model_not_found",
  });
  assert.match(err.message, /gpt-17/);
  await assert.rejects(client.chat.completions.create({ model: "nope", messages: user("x") }), (e) => e.status === 404);
});

test("unknown path is 404 and wrong method is 405, both as JSON errors", async () => {
  await expectError(await fetch(`${w.url}/v1/embeddings`, { method: "POST" }), 404, { code: "not_found" });
  await expectError(await fetch(`${w.url}/`), 404);
  const r = await fetch(`${w.url}/v1/chat/completions`);
  assert.equal(r.headers.get("allow"), "POST");
  await expectError(r, 405, { code: "method_not_allowed" });
  await expectError(await fetch(`${w.url}/v1/models`, { method: "DELETE" }), 405);
});

test("every response carries a request id", async () => {
  const r = await postChat(w.url, { messages: user("x") });
  assert.match(r.headers.get("x-request-id"), /^req_[A-Za-z0-9]{24}$/);
  const e = await postChat(w.url, "{");
  assert.match(e.headers.get("x-request-id"), /^req_/);
});
