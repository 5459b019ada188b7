// Everything an ensemble can be, through real HTTP: named ensembles, vision
// routing, direct mode, Mixture-of-Agents layers, self-ensembles, tools, per
// model settings, and the Anthropic and Workers AI providers.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startMockUpstream } from "./helpers/mock-upstream.mjs";
import { startWorker, mockModel, postChat, parseSse } from "./helpers/worker.mjs";

let mock, w, client;
const user = (content) => [{ role: "user", content }];
const IMAGE = [{ role: "user", content: [{ type: "text", text: "what is this?" }, { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=", detail: "low" } }] }];

function config() {
  const m = (name, extra) => mockModel(mock, name, extra);
  return {
    default_ensemble: "basic",
    ensembles: {
      basic: { description: "plain", panel: [m("b-1"), m("b-2")], summary: m("b-s") },
      vision: {
        panel: [m("v-text")],
        summary: m("v-text-s"),
        vision: { panel: [m("v-eye-1"), m("v-eye-2")], summary: m("v-eye-s") },
      },
      direct: { panel: [], summary: m("d-s") },
      moa: { panel: [m("l-1"), m("l-2")], summary: m("l-s"), layers: 2 },
      self: { panel: [m("same", { temperature: 0.2 }), m("same", { temperature: 1.0, extra_body: { seed: 7 } })], summary: m("same-s") },
      tools: { panel: [m("t-p")], summary: m("t-s") },
      tuned: {
        panel: [m("tu-p", { max_tokens: 64, headers: { "x-custom": "yes" }, extra_body: { top_k: 4 } })],
        summary: m("tu-s"),
        keep_history: false,
      },
      claude: {
        panel: [{ provider: "anthropic", endpoint: `${mock.url}/v1`, model: "claude-p", api_key_secret: "ANTHROPIC_KEY" }],
        summary: { provider: "anthropic", endpoint: `${mock.url}/v1/messages`, model: "claude-s", api_key_secret: "ANTHROPIC_KEY", max_tokens: 300 },
        vision: {
          panel: [{ provider: "anthropic", endpoint: `${mock.url}/v1`, model: "claude-eye", api_key_secret: "ANTHROPIC_KEY" }],
          summary: { provider: "anthropic", endpoint: `${mock.url}/v1`, model: "claude-eye-s", api_key_secret: "ANTHROPIC_KEY" },
        },
      },
      cfai: {
        panel: [{ provider: "workers-ai", model: "@cf/test/panel-model" }],
        summary: { provider: "workers-ai", model: "@cf/test/summary-model", max_tokens: 77 },
      },
    },
  };
}

before(async () => {
  mock = await startMockUpstream();
  w = await startWorker({ config: config(), bindings: { ANTHROPIC_KEY: "sk-ant-test-key" }, aiMockUrl: mock.url });
  client = new OpenAI({ apiKey: "x", baseURL: `${w.url}/v1`, maxRetries: 0 });
});
after(async () => {
  await w?.close();
  await mock?.close();
});
beforeEach(() => mock.reset());

const streamText = (events) => events.filter((e) => e !== "[DONE]" && !e.error).map((e) => e.choices?.[0]?.delta?.content ?? "").join("");

test("the model field picks the ensemble; /v1/models describes each", async () => {
  const r = await client.chat.completions.create({ model: "direct", messages: user("x") });
  assert.equal(r.model, "direct");
  assert.equal(mock.requestsFor("d-s").length, 1);
  const list = (await client.models.list()).data;
  const byId = Object.fromEntries(list.map((m) => [m.id, m.n1]));
  assert.equal(byId.basic.panel_size, 2);
  assert.equal(byId.basic.description, "plain");
  assert.equal(byId.moa.layers, 2);
  assert.equal(byId.vision.vision, true);
  assert.equal(byId.basic.vision, false);
  assert.equal(byId.direct.panel_size, 0);
});

test("vision: image requests go to the vision models, image parts untouched; no vision models → 400", async () => {
  const r = await postChat(w.url, { model: "vision", messages: IMAGE });
  assert.equal(r.status, 200);
  assert.deepEqual(mock.requests.map((q) => q.model).sort(), ["v-eye-1", "v-eye-2", "v-eye-s"]);
  assert.deepEqual(mock.requestsFor("v-eye-1")[0].body.messages, IMAGE);
  assert.deepEqual(mock.requestsFor("v-eye-s")[0].body.messages.slice(1), IMAGE);
  mock.reset();
  await postChat(w.url, { model: "vision", messages: user("text only") });
  assert.deepEqual(mock.requests.map((q) => q.model).sort(), ["v-text", "v-text-s"]);
  mock.reset();
  const bad = await postChat(w.url, { model: "basic", messages: IMAGE });
  assert.equal(bad.status, 400);
  const { error } = await bad.json();
  assert.equal(error.code, "vision_not_supported");
  assert.match(error.message, /basic/);
  assert.equal(mock.requests.length, 0);
});

test("direct mode (no panel) proxies to the summary model in both modes", async () => {
  mock.set("d-s", { text: "direct answer", usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } });
  const r = await client.chat.completions.create({ model: "direct", messages: user("hi") });
  assert.equal(r.choices[0].message.content, "direct answer");
  assert.deepEqual(r.usage, { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 });
  assert.equal(r.n1.panel_total, 0);
  assert.deepEqual(mock.requestsFor("d-s")[0].body.messages, user("hi"), "no synthesis prompt in direct mode");
  const s = await postChat(w.url, { model: "direct", stream: true, stream_options: { include_usage: true }, messages: user("hi") });
  const { events } = parseSse(await s.text());
  assert.equal(streamText(events), "direct answer");
  assert.equal(events.at(-2).usage.total_tokens, 5);
});

test("two layers: layer-2 requests carry layer-1 answers; the summary aggregates layer 2", async () => {
  mock.set("l-1", [{ text: "L1-FIRST" }, { text: "L1-SECOND" }]);
  mock.set("l-2", [{ text: "L2-FIRST" }, { text: "L2-SECOND" }]);
  const r = await postChat(w.url, { model: "moa", messages: user("q") });
  const body = await r.json();
  for (const m of ["l-1", "l-2"]) {
    const [first, second] = mock.requestsFor(m);
    assert.deepEqual(first.body.messages, user("q"));
    const sys = second.body.messages[0].content;
    assert.match(sys, /L1-FIRST/);
    assert.match(sys, /L2-FIRST/);
    assert.deepEqual(second.body.messages.slice(1), user("q"));
  }
  const s = mock.requestsFor("l-s")[0].body.messages[0].content;
  assert.match(s, /L1-SECOND/);
  assert.doesNotMatch(s, /L1-FIRST/);
  assert.equal(body.n1.layers.length, 2);
  assert.equal(body.usage.total_tokens, 15 * 5);
  // Progress events name the layer.
  const st = await postChat(w.url, { model: "moa", stream: true, n1: { progress: true }, messages: user("q") });
  const layers = parseSse(await st.text()).events.filter((e) => e.n1_progress?.type === "panel_start").map((e) => e.n1_progress.layer);
  assert.deepEqual(layers, [1, 2]);
});

test("self-ensemble: the same model twice is two calls with their own settings", async () => {
  await postChat(w.url, { model: "self", messages: user("q") });
  const calls = mock.requestsFor("same");
  assert.equal(calls.length, 2);
  assert.deepEqual(calls.map((c) => c.body.temperature).sort(), [0.2, 1.0]);
  assert.deepEqual(calls.map((c) => c.body.seed ?? null).sort(), [7, null]);
});

test("tools go to the summary model only; tool_calls come back in both modes; tool history reaches the panel as text", async () => {
  const tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }];
  const call = { id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo"}' } };
  mock.set("t-s", { text: null, toolCalls: [call] });
  const r = await client.chat.completions.create({ model: "tools", messages: user("weather in Oslo?"), tools, tool_choice: "auto" });
  assert.equal(r.choices[0].finish_reason, "tool_calls");
  assert.deepEqual(r.choices[0].message.tool_calls, [call]);
  assert.equal(mock.requestsFor("t-p")[0].body.tools, undefined);
  assert.equal(mock.requestsFor("t-p")[0].body.tool_choice, undefined);
  assert.deepEqual(mock.requestsFor("t-s")[0].body.tools, tools);

  const stream = await client.chat.completions.create({ model: "tools", messages: user("weather?"), tools, stream: true });
  const deltas = [];
  let finish;
  for await (const c of stream) {
    if (c.choices[0]?.delta?.tool_calls) deltas.push(...c.choices[0].delta.tool_calls);
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(finish, "tool_calls");
  assert.equal(deltas[0].function.name, "get_weather");
  assert.equal(deltas.map((d) => d.function.arguments).join(""), '{"city":"Oslo"}');

  mock.reset();
  // A later turn of a tool-using conversation (a tool result last would go to
  // the summary model alone: tool_turns "auto").
  const history = [
    ...user("weather in Oslo?"),
    { role: "assistant", content: null, tool_calls: [call] },
    { role: "tool", tool_call_id: "call_1", content: "12 C and rain" },
    { role: "assistant", content: "12 C and rain in Oslo." },
    ...user("and tomorrow?"),
  ];
  await postChat(w.url, { model: "tools", messages: history, tools });
  const panelMsgs = mock.requestsFor("t-p")[0].body.messages;
  assert.ok(panelMsgs.every((m) => m.role !== "tool" && !m.tool_calls));
  assert.match(panelMsgs[1].content, /get_weather/);
  assert.match(panelMsgs[2].content, /12 C and rain/);
  assert.deepEqual(mock.requestsFor("t-s")[0].body.messages.slice(1), history, "the summary model gets the real tool messages");
});

test("per-model max_tokens, headers and extra body; keep_history false", async () => {
  const messages = [{ role: "system", content: "SYS" }, ...user("old"), { role: "assistant", content: "reply" }, ...user("new")];
  await postChat(w.url, { model: "tuned", messages });
  const p = mock.requestsFor("tu-p")[0];
  assert.equal(p.body.max_tokens, 64);
  assert.equal(p.body.top_k, 4);
  assert.equal(p.headers["x-custom"], "yes");
  assert.deepEqual(p.body.messages, messages, "the panel sees the whole conversation");
  const s = mock.requestsFor("tu-s")[0].body.messages;
  assert.deepEqual(s.slice(1).map((m) => m.content), ["SYS", "new"]);
});

test("a client's null max_tokens means 'not set': the configured max_tokens reaches every provider, once", async () => {
  await postChat(w.url, { model: "tuned", max_tokens: null, temperature: null, messages: user("x") });
  const p = mock.requestsFor("tu-p")[0];
  assert.equal(p.raw.match(/"max_tokens"/g).length, 1, p.raw);
  assert.equal(p.body.max_tokens, 64);
  assert.ok(!/"temperature"/.test(p.raw), "a null temperature is not forwarded");
  await postChat(w.url, { model: "claude", max_tokens: null, messages: user("x") });
  assert.equal(mock.requestsFor("claude-s")[0].body.max_tokens, 300);
  await postChat(w.url, { model: "cfai", max_tokens: null, messages: user("x") });
  assert.equal(mock.requestsFor("@cf/test/summary-model")[0].body.max_tokens, 77);
});

test("anthropic provider: requests translated to the Messages API, replies and streams back to OpenAI", async () => {
  mock.set("claude-p", { text: "CLAUDE PANEL" });
  mock.set("claude-s", { text: "Claude synthesis", chunks: 4, usage: { prompt_tokens: 20, completion_tokens: 4 } });
  const r = await client.chat.completions.create({ model: "claude", messages: [{ role: "system", content: "Be kind." }, ...user("hi")] });
  assert.equal(r.choices[0].message.content, "Claude synthesis");
  assert.equal(r.usage.total_tokens, 15 + 24);
  const p = mock.requestsFor("claude-p")[0];
  assert.equal(p.path, "/v1/messages");
  assert.equal(p.headers["x-api-key"], "sk-ant-test-key");
  assert.equal(p.headers["anthropic-version"], "2023-06-01");
  assert.equal(p.headers.authorization, undefined);
  assert.equal(p.body.system, "Be kind.");
  assert.deepEqual(p.body.messages, [{ role: "user", content: "hi" }]);
  assert.equal(p.body.max_tokens, 4096);
  const s = mock.requestsFor("claude-s")[0].body;
  assert.equal(s.max_tokens, 300);
  assert.match(s.system, /CLAUDE PANEL/);
  assert.match(s.system, /Be kind\./);

  const stream = await client.chat.completions.create({ model: "claude", messages: user("hi"), stream: true, stream_options: { include_usage: true } });
  let text = "";
  let usage;
  for await (const c of stream) {
    text += c.choices[0]?.delta?.content ?? "";
    usage = c.usage ?? usage;
  }
  assert.equal(text, "Claude synthesis");
  assert.equal(usage.total_tokens, 15 + 24);
  assert.equal(mock.requestsFor("claude-s").at(-1).body.stream, true);
});

test("anthropic provider: data URLs that are not base64 are decoded and sent as base64 image sources", async () => {
  const url = (u) => [{ role: "user", content: [{ type: "text", text: "look" }, { type: "image_url", image_url: { url: u } }] }];
  assert.equal((await postChat(w.url, { model: "claude", messages: url("data:image/svg+xml,%3Csvg%2F%3E") })).status, 200);
  assert.deepEqual(mock.requestsFor("claude-eye")[0].body.messages[0].content[1], {
    type: "image", source: { type: "base64", media_type: "image/svg+xml", data: Buffer.from("<svg/>").toString("base64") },
  });
  await postChat(w.url, { model: "claude", messages: url("data:image/png;base64,iVBORw0KGgo=") });
  assert.deepEqual(mock.requestsFor("claude-eye")[1].body.messages[0].content[1].source, { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" });
});

test("workers-ai provider through the AI binding, in both modes", async () => {
  mock.set("@cf/test/panel-model", { text: "WORKERS AI PANEL" });
  mock.set("@cf/test/summary-model", { text: "Workers AI synthesis", chunks: 3 });
  const r = await client.chat.completions.create({ model: "cfai", messages: user("hi"), max_tokens: 50 });
  assert.equal(r.choices[0].message.content, "Workers AI synthesis");
  const p = mock.requestsFor("@cf/test/panel-model")[0];
  assert.equal(p.headers["x-workers-ai"], "1", "called through the binding");
  assert.equal(p.body.max_tokens, 50);
  assert.equal(p.body.user, undefined, "only fields Workers AI knows are sent");
  assert.match(mock.requestsFor("@cf/test/summary-model")[0].body.messages[0].content, /WORKERS AI PANEL/);
  const stream = await client.chat.completions.create({ model: "cfai", messages: user("hi"), stream: true, stream_options: { include_usage: true } });
  let text = "";
  let usage;
  for await (const c of stream) {
    text += c.choices[0]?.delta?.content ?? "";
    usage = c.usage ?? usage;
  }
  assert.equal(text, "Workers AI synthesis");
  assert.equal(usage.total_tokens, 30);
});

test("no config but an AI binding: the built-in Workers AI ensemble answers", async () => {
  const bare = await startWorker({ aiMockUrl: mock.url });
  try {
    const models = await (await fetch(`${bare.url}/v1/models`)).json();
    assert.deepEqual(models.data.map((m) => m.id), ["workers-ai"]);
    const r = await postChat(bare.url, { messages: user("hello") });
    assert.equal(r.status, 200);
    const body = await r.json();
    assert.equal(body.model, "workers-ai");
    assert.equal(body.n1.panel_ok, 3);
    assert.ok(mock.requests.every((q) => q.model.startsWith("@cf/")));
    assert.equal(mock.requests.length, 4);
  } finally {
    await bare.close();
  }
});
