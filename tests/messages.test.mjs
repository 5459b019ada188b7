// The Anthropic Messages API (POST /v1/messages, /v1/messages/count_tokens)
// through real HTTP: the worker in workerd, the mock upstream, the official
// @anthropic-ai/sdk and raw fetch. Same ensembles, keys, limits, resilience and
// n1 metadata as chat completions; only the wire format differs.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import Anthropic from "@anthropic-ai/sdk";
import { startWorker, mockModel, postChat } from "./helpers/worker.mjs";
import { post, events, streamText, delta, bothModes, messagesConfig, messagesWorld } from "./helpers/messages.mjs";
import { venvPython } from "./helpers/dev-server.mjs";

const both = (model, extra) => bothModes(w.url, model, extra);

let mock, w, client, close;
const user = (content) => [{ role: "user", content }];
const ANSWER = "The sky scatters blue light most.";

before(async () => ({ mock, w, client, close } = await messagesWorld()));
after(() => close?.());
beforeEach(() => mock.reset());

// ---- the official SDK

test("messages.create: a message with the ensemble as model, summed usage, n1 and the x-n1 headers", async () => {
  mock.set("c-s", { text: ANSWER, usage: { prompt_tokens: 100, completion_tokens: 20, total_tokens: 120 } });
  const { data: r, response } = await client.messages.create({ model: "council", max_tokens: 1024, system: "Be brief.", messages: user("Why is the sky blue?") }).withResponse();
  assert.match(r.id, /^msg_[A-Za-z0-9]{24}$/);
  assert.equal(r.type, "message");
  assert.equal(r.role, "assistant");
  assert.equal(r.model, "council");
  assert.deepEqual(r.content, [{ type: "text", text: ANSWER }]);
  assert.equal(r.stop_reason, "end_turn");
  assert.equal(r.stop_sequence, null);
  // 2 panel calls × (10 in, 5 out) + the summary's 100 / 20.
  assert.deepEqual(r.usage, { input_tokens: 120, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 30 });
  assert.deepEqual(r.n1.panel.map((p) => [p.model, p.status]), [["c-a", "ok"], ["c-b", "ok"]]);
  assert.equal(r.n1.summary.model, "c-s");
  assert.equal(response.headers.get("x-n1-ensemble"), "council");
  assert.equal(response.headers.get("x-n1-panel"), "2/2");
  assert.equal(response.headers.get("x-n1-degraded"), "false");
  assert.match(response.headers.get("x-request-id"), /^req_/);
  // The summary model got the client's system prompt after the synthesis prompt, and the panel the conversation.
  const s = mock.requestsFor("c-s")[0].body;
  assert.deepEqual(s.messages.slice(1), [{ role: "system", content: "Be brief." }, { role: "user", content: "Why is the sky blue?" }]);
  assert.equal(s.max_completion_tokens, 1024);
  assert.match(s.messages[0].content, /answer from c-a/);
  assert.equal(mock.requestsFor("c-a")[0].body.messages.at(-1).content, "Why is the sky blue?");
});

test("beta.messages.create (anthropic-beta header, ?beta=true) answers the same way", async () => {
  mock.set("c-s", { text: ANSWER });
  const r = await client.beta.messages.create({ model: "council", max_tokens: 512, betas: ["interleaved-thinking-2025-05-14"], messages: user("hi") });
  assert.deepEqual(r.content, [{ type: "text", text: ANSWER }]);
  assert.equal(r.usage.input_tokens, 30);
});

test("messages.stream: text events, the final message with summed usage and n1; the raw event sequence", async () => {
  mock.set("c-s", { text: "Streamed synthesis, ünïcödé 🎉 included.", chunks: 6 });
  const stream = client.messages.stream({ model: "council", max_tokens: 1024, messages: user("hi") });
  let text = "";
  stream.on("text", (t) => (text += t));
  const final = await stream.finalMessage();
  assert.equal(text, "Streamed synthesis, ünïcödé 🎉 included.");
  assert.deepEqual(final.content, [{ type: "text", text }]);
  assert.equal(final.model, "council");
  assert.equal(final.stop_reason, "end_turn");
  assert.equal(final.usage.input_tokens, 30);
  assert.equal(final.usage.output_tokens, 15);
  assert.equal(mock.requestsFor("c-s")[0].body.stream, true);

  const r = await post(w.url, { model: "council", max_tokens: 1024, stream: true, messages: user("hi") });
  assert.equal(r.headers.get("x-n1-ensemble"), "council");
  const { events: evs } = events(await r.text());
  const kinds = evs.map((e) => e.event).filter((k) => k !== "ping");
  assert.equal(kinds[0], "message_start");
  assert.deepEqual(kinds.slice(1, 2), ["content_block_start"]);
  assert.deepEqual(kinds.slice(-3), ["content_block_stop", "message_delta", "message_stop"]);
  const start = evs[0].data.message;
  assert.match(start.id, /^msg_/);
  assert.deepEqual([start.content, start.stop_reason], [[], null]);
  const d = delta(evs);
  assert.deepEqual(d.delta, { stop_reason: "end_turn", stop_sequence: null });
  assert.deepEqual(d.usage, { input_tokens: 30, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 15 });
  assert.equal(d.n1.ensemble, "council");
  assert.equal(d.n1.panel_ok, 2);
});

test("a tool_use → tool_result round trip: the summary model's tool call, then its result as a tool message (both modes)", async () => {
  const tools = [{ name: "get_weather", description: "Weather by city", input_schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } }];
  const call = { id: "call_w1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } };
  mock.set("tl-s", { text: "", toolCalls: [call] });
  const q = user("Weather in Paris?");
  const first = await client.messages.create({ model: "tools", max_tokens: 1024, tools, messages: q });
  assert.equal(first.stop_reason, "tool_use");
  assert.deepEqual(first.content, [{ type: "tool_use", id: "call_w1", name: "get_weather", input: { city: "Paris" } }]);
  const s1 = mock.requestsFor("tl-s")[0].body;
  assert.deepEqual(s1.tools, [{ type: "function", function: { name: "get_weather", description: "Weather by city", parameters: tools[0].input_schema } }]);
  assert.equal(mock.requestsFor("tl-p")[0].body.tools, undefined, "the panel answers in text");

  mock.reset();
  mock.set("tl-s", { text: "It is 18°C in Paris." });
  const history = [...q, { role: "assistant", content: first.content }, { role: "user", content: [{ type: "tool_result", tool_use_id: "call_w1", content: "18°C, sunny" }] }];
  const second = await client.messages.create({ model: "tools", max_tokens: 1024, tools, messages: history });
  assert.deepEqual(second.content, [{ type: "text", text: "It is 18°C in Paris." }]);
  const s2 = mock.requestsFor("tl-s")[0].body.messages;
  assert.deepEqual(s2.slice(-2), [
    { role: "assistant", content: null, tool_calls: [call] },
    { role: "tool", content: "18°C, sunny", tool_call_id: "call_w1" },
  ]);
  // A turn that ends in a tool result is a tool turn: the summary model answers alone.
  assert.equal(second.n1.route, "summary");
  assert.equal(mock.requestsFor("tl-p").length, 0);
  // The next user turn goes to the panel again, which sees the exchange as readable text.
  await client.messages.create({ model: "tools", max_tokens: 1024, tools, messages: [...history, { role: "assistant", content: second.content }, ...user("And tomorrow?")] });
  const p3 = mock.requestsFor("tl-p")[0].body.messages.map((m) => m.content).join("\n");
  assert.match(p3, /Called tool get_weather \(call call_w1\)/);
  assert.match(p3, /Result of tool call call_w1\]\n18°C, sunny/);

  // Streaming: the call arrives as a tool_use block whose input the SDK assembles.
  mock.reset();
  mock.set("tl-s", { text: "", toolCalls: [call] });
  const final = await client.messages.stream({ model: "tools", max_tokens: 1024, tools, messages: q }).finalMessage();
  assert.equal(final.stop_reason, "tool_use");
  assert.deepEqual(final.content, [{ type: "tool_use", id: "call_w1", name: "get_weather", input: { city: "Paris" } }]);
});

test("a request shaped like Claude Code's default gets a normal streamed answer", async () => {
  mock.set("c-s", { text: "Done.", chunks: 2 });
  const schema = (props) => ({ type: "object", properties: props, required: Object.keys(props), additionalProperties: false, $schema: "http://json-schema.org/draft-07/schema#" });
  const body = {
    model: "council",
    max_tokens: 32000,
    temperature: 1,
    stream: true,
    metadata: { user_id: "user_5f2d_account__session_9a1c" },
    thinking: { type: "enabled", budget_tokens: 31999 },
    system: [
      { type: "text", text: "You are Claude Code, Anthropic's official CLI for Claude.", cache_control: { type: "ephemeral" } },
      { type: "text", text: "You are an interactive CLI tool that helps users with software engineering tasks.", cache_control: { type: "ephemeral" } },
    ],
    messages: [
      { role: "system", content: "Environment: linux" },
      { role: "user", content: [
        { type: "text", text: "<system-reminder>Context.</system-reminder>" },
        { type: "text", text: "List the files.", cache_control: { type: "ephemeral" } },
      ] },
    ],
    tools: [
      { name: "Bash", description: "Runs a command", input_schema: schema({ command: { type: "string" } }) },
      { name: "Read", description: "Reads a file", input_schema: schema({ file_path: { type: "string" } }), cache_control: { type: "ephemeral" } },
      { type: "web_search_20250305", name: "web_search", max_uses: 5 },
    ],
  };
  const headers = {
    "x-api-key": "sk-ant-whatever",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14",
    "anthropic-dangerous-direct-browser-access": "true",
    "x-app": "cli",
    "user-agent": "claude-cli/2.1.0 (external, cli)",
    "x-claude-code-session-id": "9a1c",
  };
  const r = await post(w.url, body, headers);
  assert.equal(r.status, 200);
  const { events: evs } = events(await r.text());
  assert.equal(streamText(evs), "Done.");
  assert.equal(evs.at(-1).event, "message_stop");
  assert.deepEqual(delta(evs).n1.ignored_tools, ["web_search"]);
  const s = mock.requestsFor("c-s")[0].body;
  assert.equal(s.user, "user_5f2d_account__session_9a1c");
  assert.equal(s.max_completion_tokens, 32000);
  assert.equal(s.reasoning_effort, undefined, "thinking is accepted, not forwarded");
  assert.deepEqual(s.tools.map((t) => t.function.name), ["Bash", "Read"]);
  assert.deepEqual(s.messages.slice(1).map((m) => [m.role, m.content]), [
    ["system", "You are Claude Code, Anthropic's official CLI for Claude.\n\nYou are an interactive CLI tool that helps users with software engineering tasks."],
    ["system", "Environment: linux"],
    ["user", "<system-reminder>Context.</system-reminder>\n\nList the files."],
  ]);
  // Nothing Anthropic-specific reaches the OpenAI-compatible upstreams.
  for (const q of mock.requests) {
    for (const k of ["metadata", "thinking", "system", "stop_sequences", "anthropic_version", "n1"]) assert.equal(q.body[k], undefined, k);
  }
});

test("the mixed ensemble (an OpenAI-compatible and an Anthropic panel member) answers alike through /v1/messages and /v1/chat/completions", async () => {
  mock.set("mx-o", { text: "OPENAI PANEL" });
  mock.set("mx-a", { text: "ANTHROPIC PANEL" });
  mock.set("mx-s", { text: ANSWER, chunks: 3 });
  const messages = user("Why is the sky blue?");
  const a = await client.messages.create({ model: "mixed", max_tokens: 1024, messages });
  const c = await (await postChat(w.url, { model: "mixed", messages })).json();
  assert.equal(a.content[0].text, ANSWER);
  assert.equal(c.choices[0].message.content, ANSWER);
  // 3 calls of 10 in / 5 out each, counted alike.
  assert.deepEqual([a.usage.input_tokens, a.usage.output_tokens], [c.usage.prompt_tokens, c.usage.completion_tokens]);
  assert.deepEqual([a.usage.input_tokens, a.usage.output_tokens], [30, 15]);
  assert.deepEqual(a.n1.panel.map((p) => p.status), ["ok", "ok"]);
  // The Anthropic member was asked in its own format.
  assert.deepEqual(mock.requestsFor("mx-a").map((q) => [q.path, q.headers["anthropic-version"]]), [["/v1/messages", "2023-06-01"], ["/v1/messages", "2023-06-01"]]);
  for (const q of mock.requestsFor("mx-s")) {
    assert.match(q.body.messages[0].content, /OPENAI PANEL/);
    assert.match(q.body.messages[0].content, /ANTHROPIC PANEL/);
  }
  // Streaming, both ways.
  const final = await client.messages.stream({ model: "mixed", max_tokens: 1024, messages }).finalMessage();
  const chat = await (await postChat(w.url, { model: "mixed", stream: true, stream_options: { include_usage: true }, messages })).text();
  const chunks = chat.split("\n\n").filter((b) => b.startsWith("data: {")).map((b) => JSON.parse(b.slice(6)));
  assert.equal(final.content[0].text, ANSWER);
  assert.equal(chunks.map((ch) => ch.choices[0]?.delta?.content ?? "").join(""), ANSWER);
  const usage = chunks.at(-1).usage;
  assert.deepEqual([final.usage.input_tokens, final.usage.output_tokens], [usage.prompt_tokens, usage.completion_tokens]);
});

test("count_tokens: an estimate for an ensemble the key may use, without any upstream call", async () => {
  const r = await client.messages.countTokens({ model: "council", system: "abcd", messages: user("12345678") });
  assert.deepEqual(r, { input_tokens: 3 });
  const raw = await post(w.url, { model: "council", messages: user("x".repeat(400)) }, {}, undefined, "/v1/messages/count_tokens");
  assert.deepEqual(await raw.json(), { input_tokens: 100 });
  const nf = await post(w.url, { model: "nope", messages: user("x") }, {}, undefined, "/v1/messages/count_tokens");
  assert.equal(nf.status, 404);
  assert.equal((await nf.json()).error.type, "not_found_error");
  assert.equal(mock.requests.length, 0);
});

// ---- errors, in Anthropic's shape, through the SDK's error classes

async function anthropicError(r, status, type) {
  assert.equal(r.status, status);
  assert.equal(r.headers.get("content-type"), "application/json");
  const body = await r.json();
  assert.equal(body.type, "error");
  assert.equal(body.error.type, type, JSON.stringify(body));
  assert.equal(typeof body.error.message, "string");
  return body.error;
}

test("400s: a missing max_tokens, bad input, unknown fields' bad values; a forced server tool", async () => {
  await assert.rejects(client.messages.create({ model: "council", messages: user("x") }), (e) => {
    assert.ok(e instanceof Anthropic.BadRequestError, e.constructor.name);
    assert.equal(e.type, "invalid_request_error");
    assert.match(e.message, /`max_tokens` is required/);
    return true;
  });
  let e = await anthropicError(await post(w.url, "{not json"), 400, "invalid_request_error");
  assert.match(e.message, /not valid JSON/);
  e = await anthropicError(await post(w.url, { max_tokens: 5, messages: [{ role: "robot", content: "x" }] }), 400, "invalid_request_error");
  assert.match(e.message, /^`messages\[0\]` needs a `role`/);
  e = await anthropicError(await post(w.url, { max_tokens: 5, temperature: 3, messages: user("x") }), 400, "invalid_request_error");
  assert.match(e.message, /^`temperature`/);
  e = await anthropicError(await post(w.url, { max_tokens: 5, service_tier: 7, messages: user("x") }), 400, "invalid_request_error");
  assert.match(e.message, /^`service_tier`/);
  // A cache mark that is not an object (Anthropic's `cache_control` is one) is refused, not cached.
  e = await anthropicError(await post(w.url, { max_tokens: 5, cache_control: "ephemeral", messages: user("x") }), 400, "invalid_request_error");
  assert.match(e.message, /^`cache_control` must be an object/);
  const tools = [{ type: "web_search_20250305", name: "web_search" }, { name: "f", input_schema: { type: "object" } }];
  e = await anthropicError(await post(w.url, { max_tokens: 5, tools, tool_choice: { type: "tool", name: "web_search" }, messages: user("x") }), 400, "invalid_request_error");
  assert.match(e.message, /`web_search`/);
  assert.equal(e.details.error_code, "server_tool_not_supported");
  assert.equal(mock.requests.length, 0, "no upstream call for a refused request");
});

test("404s: an unknown ensemble, a path N-1 does not serve; 405 for a wrong method", async () => {
  await assert.rejects(client.messages.create({ model: "claude-sonnet-4-5", max_tokens: 10, messages: user("x") }), (e) => {
    assert.ok(e instanceof Anthropic.NotFoundError);
    assert.equal(e.type, "not_found_error");
    assert.equal(e.errorCode, "model_not_found");
    assert.match(e.message, /claude-sonnet-4-5/);
    return true;
  });
  await anthropicError(await post(w.url, {}, {}, undefined, "/v1/messages/batches"), 404, "not_found_error");
  const r = await fetch(`${w.url}/v1/messages`);
  await anthropicError(r, 405, "invalid_request_error");
  assert.equal(r.headers.get("allow"), "POST");
});

test("401 (no key, wrong key), 403 (ensemble not allowed); x-api-key and Bearer both work", async () => {
  const keys = JSON.stringify([{ key: "ck-alice-key-0001", name: "alice", ensembles: ["council"] }]);
  const kw = await startWorker({ config: messagesConfig(mock), bindings: { N1_API_KEYS: keys, N1_ALLOW_ANONYMOUS: undefined } });
  try {
    await anthropicError(await post(kw.url, { max_tokens: 5, messages: user("x") }), 401, "authentication_error");
    const wrong = new Anthropic({ apiKey: "ck-wrong-key-9999", baseURL: kw.url, maxRetries: 0 });
    await assert.rejects(wrong.messages.create({ model: "council", max_tokens: 5, messages: user("x") }), (e) => e instanceof Anthropic.AuthenticationError && e.type === "authentication_error");
    const alice = new Anthropic({ apiKey: "ck-alice-key-0001", baseURL: kw.url, maxRetries: 0 });
    await assert.rejects(alice.messages.create({ model: "private", max_tokens: 5, messages: user("x") }), (e) => {
      assert.ok(e instanceof Anthropic.PermissionDeniedError);
      assert.equal(e.type, "permission_error");
      assert.match(e.message, /private/);
      return true;
    });
    assert.equal(mock.requests.length, 0);
    // x-api-key (apiKey) and Authorization: Bearer (authToken).
    assert.equal((await alice.messages.create({ model: "council", max_tokens: 5, messages: user("x") })).model, "council");
    const bearer = new Anthropic({ authToken: "ck-alice-key-0001", baseURL: kw.url, maxRetries: 0 });
    assert.equal((await bearer.messages.create({ model: "council", max_tokens: 5, messages: user("x") })).model, "council");
    await anthropicError(await post(kw.url, { model: "council", messages: user("x") }, {}, undefined, "/v1/messages/count_tokens"), 401, "authentication_error");
  } finally {
    await kw.close();
  }
});

test("413 (body over N1_MAX_BODY_BYTES) and 429 (rate limit, with retry-after)", async () => {
  const sw = await startWorker({ config: messagesConfig(mock), bindings: { N1_MAX_BODY_BYTES: "2000" }, ratelimits: { RATE_LIMITER: { simple: { limit: 2, period: 60 } } } });
  try {
    const c = new Anthropic({ apiKey: "unused", baseURL: sw.url, maxRetries: 0 });
    await assert.rejects(c.messages.create({ model: "council", max_tokens: 5, messages: user("y".repeat(5000)) }), (e) => {
      assert.ok(e instanceof Anthropic.ContentTooLargeError, String(e));
      assert.equal(e.type, "request_too_large");
      return true;
    });
    const r = await post(sw.url, { model: "council", max_tokens: 5, messages: user("x") });
    assert.equal(r.status, 200);
    await assert.rejects(c.messages.create({ model: "council", max_tokens: 5, messages: user("x") }), (e) => {
      assert.ok(e instanceof Anthropic.RateLimitError);
      assert.equal(e.type, "rate_limit_error");
      assert.equal(e.headers.get("retry-after"), "60");
      return true;
    });
  } finally {
    await sw.close();
  }
});

test("502: every panel model failed (SDK error, and an error event when streaming); no secret in either", async () => {
  const SECRET = "sk-LEAKCHECK-panel-key-0001";
  const lw = await startWorker({ config: { ensembles: { allfail: { panel: [mockModel(mock, "lk-1", { api_key_secret: "LK", max_retries: 0 })], summary: mockModel(mock, "lk-s") } } }, bindings: { LK: SECRET } });
  try {
    mock.set("lk-1", { status: 401, errorBody: { error: { message: `Incorrect API key provided: ${SECRET}` } } });
    const c = new Anthropic({ apiKey: "unused", baseURL: lw.url, maxRetries: 0 });
    await assert.rejects(c.messages.create({ model: "allfail", max_tokens: 5, messages: user("x") }), (e) => {
      assert.ok(e instanceof Anthropic.InternalServerError);
      assert.equal(e.status, 502);
      assert.equal(e.type, "api_error");
      assert.equal(e.errorCode, "panel_failed");
      assert.match(e.message, /panel_failed: Too few panel models answered/);
      assert.match(e.message, /lk-1 \(HTTP 401\)/);
      assert.ok(!JSON.stringify(e.error).includes(SECRET));
      return true;
    });
    const text = await (await post(lw.url, { model: "allfail", max_tokens: 5, stream: true, messages: user("x") })).text();
    assert.ok(!text.includes(SECRET));
    const { events: evs } = events(text);
    assert.equal(evs.at(-1).event, "error");
    assert.equal(evs.at(-1).data.error.details.error_code, "panel_failed");
    await assert.rejects(c.messages.stream({ model: "allfail", max_tokens: 5, messages: user("x") }).finalMessage(), (e) => {
      assert.ok(e instanceof Anthropic.APIError, String(e));
      assert.equal(e.type, "api_error");
      return true;
    });
    assert.equal(mock.requestsFor("lk-s").length, 0);
  } finally {
    await lw.close();
  }
});

test("message_start leaves at once, and ping events (not SSE comments) flow while the panel works", async () => {
  mock.set("ka-p", { delayMs: 1000 });
  const t0 = Date.now();
  const r = await post(w.url, { model: "keepalive", max_tokens: 100, stream: true, messages: user("q") });
  const reader = r.body.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  assert.ok(Date.now() - t0 < 500, "first byte before the panel finished");
  assert.match(first, /^event: message_start\n/);
  let rest = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    rest += new TextDecoder().decode(value);
  }
  const { events: evs, comments } = events(first + rest);
  assert.deepEqual(comments, []);
  assert.ok(evs.filter((e) => e.event === "ping").length >= 3);
  assert.ok(rest.includes('event: ping\ndata: {"type": "ping"}\n\n'));
  assert.equal(evs.at(-1).event, "message_stop");
});

test("progress events are opt-in n1_progress events, which the SDK passes over; nothing of them reaches the message", async () => {
  mock.set("pg-1", { text: "PANEL-ONE-TEXT" });
  mock.set("pg-2", { status: 400 });
  mock.set("pg-s", { text: "final answer" });
  const plain = events(await (await post(w.url, { model: "progress", max_tokens: 100, stream: true, messages: user("q") })).text());
  assert.ok(!plain.events.some((e) => e.event === "n1_progress"));
  for (const [body, headers] of [[{ n1: { progress: true } }, {}], [{}, { "x-n1-progress": "1" }]]) {
    const r = await post(w.url, { model: "progress", max_tokens: 100, stream: true, messages: user("q"), ...body }, headers);
    const { events: evs } = events(await r.text());
    const progress = evs.filter((e) => e.event === "n1_progress").map((e) => e.data.n1_progress);
    // pg-1's text also streams in as panel_delta events.
    assert.equal(progress.filter((p) => p.type === "panel_delta").map((p) => p.content).join(""), "PANEL-ONE-TEXT");
    assert.deepEqual(progress.filter((p) => p.type !== "panel_delta").map((p) => p.type).sort(), ["panel_done", "panel_member", "panel_member", "panel_start", "summary_start"]);
    assert.equal(progress.find((p) => p.type === "panel_member" && p.model === "pg-1").content, "PANEL-ONE-TEXT");
    assert.equal(streamText(evs), "final answer");
  }
  // The official SDK: its MessageStream ignores the unknown event type; the raw stream hands it over.
  const stream = client.messages.stream({ model: "progress", max_tokens: 100, messages: user("q"), n1: { progress: true } });
  const seen = [];
  stream.on("streamEvent", (e) => seen.push(e.type));
  const final = await stream.finalMessage();
  assert.deepEqual(final.content, [{ type: "text", text: "final answer" }]);
  assert.ok(seen.includes("n1_progress"), seen.join());
  const raw = await client.messages.create({ model: "progress", max_tokens: 100, stream: true, messages: user("q"), n1: { progress: true } });
  const types = [];
  for await (const ev of raw) types.push(ev.type);
  assert.ok(types.includes("n1_progress") && types.at(-1) === "message_stop", types.join());
  assert.ok(mock.requests.every((q) => q.body.n1 === undefined));
});

test("the Python SDK (anthropic, in the tools' virtualenv) takes the same stream, n1_progress events included", async () => {
  mock.set("pg-s", { text: "final answer", chunks: 3 });
  const py = `
import anthropic
c = anthropic.Anthropic(base_url="${w.url}", api_key="x", max_retries=0)
q = dict(model="progress", max_tokens=10, messages=[{"role": "user", "content": "q"}], extra_body={"n1": {"progress": True}})
print(",".join(e.type for e in c.messages.create(stream=True, **q)))
with c.messages.stream(**q) as s:
    print("".join(s.text_stream), s.get_final_message().usage.input_tokens)`;
  const { stdout } = await promisify(execFile)(venvPython(), ["-c", py], { encoding: "utf8" });
  const [types, final] = stdout.trim().split("\n");
  assert.match(types, /^message_start,(n1_progress,)+content_block_start,.*message_delta,message_stop$/);
  assert.equal(final, "final answer 30");
});

test("a panic on a /v1/messages path still answers in Anthropic's shape (JSON 500, or an error event mid-stream)", async () => {
  const pw = await startWorker({ config: messagesConfig(mock), bindings: { N1_ENABLE_TEST_HOOKS: "true" } });
  try {
    const e = await anthropicError(await post(pw.url, { max_tokens: 5, messages: user("x") }, { "x-n1-test-panic": "now" }), 500, "api_error");
    assert.equal(e.details.error_code, "internal_error");
    const s = await post(pw.url, { max_tokens: 5, stream: true, messages: user("x") }, { "x-n1-test-panic": "stream" });
    assert.equal(s.status, 200);
    const { events: evs } = events(await s.text());
    assert.deepEqual(evs.map((ev) => ev.event), ["error"]);
    assert.equal(evs[0].data.error.details.error_code, "internal_error");
    assert.equal((await post(pw.url, { max_tokens: 5, messages: user("x") })).status, 200, "the next request gets a fresh instance");
  } finally {
    await pw.close();
  }
});
