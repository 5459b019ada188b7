// The built-in `workers-ai` ensemble (no config, AI binding present), through
// real HTTP: the worker in workerd, the AI binding a mock that answers in the
// OpenAI shapes the 2026 catalog models use. Text, vision and tools reach the
// table's models; a paid-plan refusal falls back; a model Workers AI does not
// serve is reported as `model_not_found` with its id.
// Model ids come from /v1/models and the checked catalog copy, so a catalog
// change stays a one-line edit of src/workers_ai.rs (and tests/data).
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import OpenAI from "openai";
import { startMockUpstream } from "./helpers/mock-upstream.mjs";
import { startWorker, postChat, parseSse } from "./helpers/worker.mjs";

const CATALOG = new Set(
  readFileSync(new URL("./data/workers-ai-models.txt", import.meta.url), "utf8")
    .split("\n")
    .filter((l) => l.trim() && !l.startsWith("#"))
    .map((l) => l.split(/\s+/)[0]),
);
const user = (content) => [{ role: "user", content }];
const IMAGE = [{ role: "user", content: [{ type: "text", text: "what is this?" }, { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } }] }];
const TOOLS = [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }];
const CALL = { id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo"}' } };
// What the binding's run() rejects with, as Workers AI sends it (errors page; issue cloudflare-docs#32501).
const aiError = (internalCode, description, status = 400) => ({ status, errorBody: { internalCode, name: "AiError", description } });

let mock, w, client, def;

before(async () => {
  mock = await startMockUpstream();
  w = await startWorker({ aiMockUrl: mock.url, aiShape: "openai" });
  client = new OpenAI({ apiKey: "x", baseURL: `${w.url}/v1`, maxRetries: 0 });
  const models = await (await fetch(`${w.url}/v1/models`)).json();
  assert.deepEqual(models.data.map((m) => m.id), ["workers-ai"]);
  def = models.data[0].n1;
});
after(async () => {
  await w?.close();
  await mock?.close();
});
beforeEach(() => mock.reset());

test("the default's models are all in the checked catalog copy", () => {
  const all = [...def.panel, def.summary, ...(def.summary_fallbacks ?? [])];
  assert.ok(def.panel.length >= 2 && def.summary_fallbacks?.length >= 1, JSON.stringify(def));
  for (const id of all) assert.ok(CATALOG.has(id), `${id} is not in tests/data/workers-ai-models.txt`);
  assert.equal(def.vision, true);
});

test("text: the panel answers and the summary model synthesizes, with the table's settings, in both modes", async () => {
  mock.set(def.summary, { text: "the synthesis", chunks: 3 });
  const r = await postChat(w.url, { messages: user("hello") });
  assert.equal(r.status, 200);
  const body = await r.json();
  assert.equal(body.choices[0].message.content, "the synthesis");
  assert.equal(body.n1.panel_ok, def.panel.length);
  assert.equal(body.n1.summary.model, def.summary);
  assert.deepEqual(mock.requests.map((q) => q.model).sort(), [...def.panel, def.summary].sort());
  for (const q of mock.requests) {
    assert.equal(q.headers["x-workers-ai"], "1", "through the binding");
    assert.ok(Number.isInteger(q.body.max_tokens) && q.body.max_tokens >= 1024, `${q.model}: max_tokens ${q.body.max_tokens}`);
  }
  assert.ok(mock.requests.some((q) => typeof q.body.reasoning_effort === "string"), "reasoning effort from the table");

  mock.reset();
  mock.set(def.summary, { text: "the synthesis", chunks: 3 });
  const s = await postChat(w.url, { messages: user("hello"), stream: true, stream_options: { include_usage: true } });
  const { events } = parseSse(await s.text());
  const chunks = events.filter((e) => e !== "[DONE]");
  assert.equal(chunks.map((e) => e.choices?.[0]?.delta?.content ?? "").join(""), "the synthesis");
  const finishes = chunks.map((e) => e.choices?.[0]?.finish_reason).filter(Boolean);
  assert.deepEqual(finishes, ["stop"], "one finish_reason");
  assert.equal(events.at(-1), "[DONE]");
});

test("vision: image requests go to the vision models, image parts untouched", async () => {
  const r = await postChat(w.url, { messages: IMAGE });
  assert.equal(r.status, 200);
  const body = await r.json();
  const called = mock.requests.map((q) => q.model);
  assert.equal(body.n1.panel.length + 1, called.length);
  assert.notDeepEqual(new Set(called), new Set([...def.panel, def.summary]), "not the text models");
  for (const m of called) assert.ok(CATALOG.has(m), m);
  for (const p of body.n1.panel) assert.deepEqual(mock.requestsFor(p.model)[0].body.messages, IMAGE);
});

test("tools: tool_calls come back from the default's summary model in both modes", async () => {
  mock.set(def.summary, { text: null, toolCalls: [CALL] });
  const r = await client.chat.completions.create({ messages: user("weather in Oslo?"), model: "workers-ai", tools: TOOLS });
  assert.equal(r.choices[0].finish_reason, "tool_calls");
  assert.deepEqual(r.choices[0].message.tool_calls, [CALL]);
  assert.deepEqual(mock.requestsFor(def.summary)[0].body.tools, TOOLS);
  for (const p of def.panel) assert.equal(mock.requestsFor(p)[0].body.tools, undefined, "tools go to the summary only");

  const stream = await client.chat.completions.create({ messages: user("weather?"), model: "workers-ai", tools: TOOLS, stream: true });
  const deltas = [];
  const finishes = [];
  for await (const c of stream) {
    if (c.choices[0]?.delta?.tool_calls) deltas.push(...c.choices[0].delta.tool_calls);
    if (c.choices[0]?.finish_reason) finishes.push(c.choices[0].finish_reason);
  }
  assert.deepEqual(finishes, ["tool_calls"], "the model's own finish, not a second one");
  assert.equal(deltas[0].function.name, "get_weather");
  assert.equal(deltas.map((d) => d.function.arguments).join(""), '{"city":"Oslo"}');
});

test("Workers Free: the paid summary model's refusal (5035) hands the synthesis to the fallback, without retries", async () => {
  const [fallback] = def.summary_fallbacks;
  const refuse = aiError(5035, "This model requires the Workers Paid plan. Upgrade to continue.", 403);
  mock.set(def.summary, refuse);
  mock.set(fallback, { text: "free-plan synthesis" });
  const r = await postChat(w.url, { messages: user("hi") });
  assert.equal(r.status, 200);
  const body = await r.json();
  assert.equal(body.choices[0].message.content, "free-plan synthesis");
  assert.equal(body.n1.summary.model, fallback);
  const [f] = body.n1.summary.failed;
  assert.equal(f.model, def.summary);
  assert.equal(f.status, 403);
  assert.match(f.reason, /Workers Paid plan/);
  assert.equal(mock.requestsFor(def.summary).length, 1, "a 403 is not retried");

  mock.reset();
  mock.set(def.summary, refuse);
  mock.set(fallback, { text: "free-plan synthesis" });
  const s = await postChat(w.url, { messages: user("hi"), stream: true });
  const text = parseSse(await s.text()).events.filter((e) => e !== "[DONE]").map((e) => e.choices?.[0]?.delta?.content ?? "").join("");
  assert.equal(text, "free-plan synthesis");
  assert.equal(mock.requestsFor(def.summary).length, 1);
});

test("a model Workers AI does not serve is reported as model_not_found with its id, in n1 and in the 502", async () => {
  const [gone, ...rest] = def.panel;
  mock.set(gone, aiError(5007, `No such model ${gone} or task`));
  const r = await postChat(w.url, { messages: user("hi") });
  assert.equal(r.status, 200, "the other members carry the answer");
  const body = await r.json();
  const member = body.n1.panel.find((p) => p.model === gone);
  assert.equal(member.status, "model_not_found");
  assert.equal(member.attempts, 1, "not retried");
  assert.equal(member.error.kind, "model_not_found");
  assert.ok(member.error.reason.startsWith(`model_not_found: Workers AI does not serve \`${gone}\``), member.error.reason);
  assert.equal(mock.requestsFor(gone).length, 1);

  // Every member gone (one of them deprecated): the 502 names each id.
  mock.reset();
  mock.set(gone, aiError(5028, "This model was deprecated on 2026-05-30. Please use an alternative model"));
  for (const m of rest) mock.set(m, aiError(5007, `No such model ${m} or task`));
  const bad = await postChat(w.url, { messages: user("hi") });
  assert.equal(bad.status, 502);
  const { error } = await bad.json();
  assert.equal(error.code, "panel_failed");
  assert.deepEqual(error.failures.map((f) => f.model).sort(), [...def.panel].sort());
  for (const f of error.failures) {
    assert.equal(f.kind, "model_not_found");
    assert.match(f.reason, /^model_not_found: /);
    assert.ok(f.reason.includes(f.model), f.reason);
    assert.ok(error.message.includes(f.model), error.message);
  }
  assert.match(error.failures.find((f) => f.model === gone).reason, /deprecated on 2026-05-30/);
  assert.match(error.message, /model_not_found/);

  // Streaming: the same words in the error event.
  const s = await postChat(w.url, { messages: user("hi"), stream: true });
  const ev = parseSse(await s.text()).events.find((e) => e.error);
  assert.equal(ev.error.code, "panel_failed");
  assert.match(ev.error.message, /model_not_found/);
  assert.ok(ev.error.message.includes(gone), ev.error.message);
});
