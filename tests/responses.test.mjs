// The OpenAI Responses API front door (POST /v1/responses) through real HTTP:
// the worker in workerd, the mock upstream, and the official openai client
// (responses.create / responses.stream) as its docs show.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startMockUpstream } from "./helpers/mock-upstream.mjs";
import { startWorker, mockModel, parseSse } from "./helpers/worker.mjs";

const ALICE = "rk-alice-0001-aaaa";
const BOB = "rk-bob-0002-bbbb";
let mock, w, client;
const m = (name, extra) => mockModel(mock, name, extra);

function config() {
  return {
    default_ensemble: "council",
    ensembles: {
      council: { panel: [m("p-1"), m("p-2")], summary: m("s") },
      failing: { panel: [m("fp-1", { max_retries: 0 }), m("fp-2", { max_retries: 0 })], summary: m("fs") },
      partial: { panel: [m("pp-ok"), m("pp-bad", { max_retries: 0 })], summary: m("ps") },
      fallback: { panel: [m("fb-p")], summary: [m("fb-s1", { max_retries: 0 }), m("fb-s2")] },
      slow: { panel: [m("sl-p", { timeout_ms: 300, max_retries: 0 }), m("sl-ok")], summary: m("sl-s") },
      ceiling: { panel: [m("cl-p")], summary: m("cl-s"), request_timeout_ms: 800 },
      // Streams that end ([DONE], message_stop) and keep the connection open.
      heldopen: {
        panel: [m("ho-p", { timeout_ms: 1500, max_retries: 0 }), { provider: "anthropic", endpoint: `${mock.url}/v1`, model: "ho-claude", api_key_secret: "ANTHROPIC_KEY", timeout_ms: 1500, max_retries: 0 }],
        summary: m("ho-s", { timeout_ms: 1500, max_retries: 0 }),
      },
      mixed: {
        panel: [m("mx-openai"), { provider: "anthropic", endpoint: `${mock.url}/v1`, model: "mx-claude", api_key_secret: "ANTHROPIC_KEY" }],
        summary: m("mx-s"),
      },
    },
  };
}

before(async () => {
  mock = await startMockUpstream();
  w = await startWorker({
    config: config(),
    bindings: { N1_API_KEYS: JSON.stringify([{ key: ALICE, name: "alice" }, { key: BOB, name: "bob" }]), N1_ALLOW_ANONYMOUS: undefined, ANTHROPIC_KEY: "sk-ant-responses" },
  });
  client = new OpenAI({ apiKey: ALICE, baseURL: `${w.url}/v1`, maxRetries: 0 });
});
after(async () => {
  await w?.close();
  await mock?.close();
});
beforeEach(() => mock.reset());

const post = (body, key = ALICE) =>
  fetch(`${w.url}/v1/responses`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${key}` }, body: JSON.stringify(body) });

test("responses.create: the synthesis as a response object with output_text, usage and n1", async () => {
  mock.set("s", { text: "The sky is blue because of Rayleigh scattering.", usage: { prompt_tokens: 100, completion_tokens: 20, total_tokens: 120 } });
  const r = await client.responses.create({ model: "council", instructions: "Be brief.", input: "Why is the sky blue?" });
  assert.match(r.id, /^resp_[A-Za-z0-9]{20,}$/);
  assert.equal(r.object, "response");
  assert.equal(r.status, "completed");
  assert.equal(r.model, "council");
  assert.equal(r.output_text, "The sky is blue because of Rayleigh scattering.");
  assert.equal(r.output[0].type, "message");
  assert.equal(r.output[0].role, "assistant");
  assert.deepEqual(r.output[0].content, [{ type: "output_text", text: r.output_text, annotations: [] }]);
  // 2 panel calls x 15 + summary 120, in the Responses API's names.
  assert.deepEqual(r.usage, { input_tokens: 120, input_tokens_details: { cached_tokens: 0 }, output_tokens: 30, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 150 });
  assert.equal(r.instructions, "Be brief.");
  assert.deepEqual(r.n1.panel.map((p) => p.status), ["ok", "ok"]);
  // The panel and the summary see the instructions as a system message and the input as the user's turn.
  const s = mock.requestsFor("s")[0].body;
  assert.deepEqual(s.messages.slice(1), [{ role: "system", content: "Be brief." }, { role: "user", content: "Why is the sky blue?" }]);
  assert.deepEqual(mock.requestsFor("p-1")[0].body.messages, [{ role: "system", content: "Be brief." }, { role: "user", content: "Why is the sky blue?" }]);
});

test("responses.stream: the documented events in order with sequence numbers, text deltas, the final response with usage", async () => {
  mock.set("s", { text: "Streamed answer, ünïcödé 🎉.", chunks: 5 });
  const stream = client.responses.stream({ model: "council", input: [{ role: "user", content: [{ type: "input_text", text: "hi" }] }] });
  const events = [];
  let text = "";
  for await (const e of stream) {
    events.push(e);
    if (e.type === "response.output_text.delta") text += e.delta;
  }
  const final = await stream.finalResponse();
  assert.equal(text, "Streamed answer, ünïcödé 🎉.");
  assert.equal(final.output_text, text);
  assert.equal(final.status, "completed");
  assert.equal(final.usage.total_tokens, 45);
  assert.equal(final.n1.summary.model, "s");
  const kinds = events.map((e) => e.type).filter((t) => t !== "response.output_text.delta");
  assert.deepEqual(kinds, [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
  ]);
  assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
  const deltas = events.filter((e) => e.type === "response.output_text.delta");
  assert.ok(deltas.length >= 3);
  assert.ok(deltas.every((d) => d.item_id === events[2].item.id && d.output_index === 0 && d.content_index === 0));
});

test("a function call round trip: the summary model's call comes back as a function_call item; its output reaches the summary on the next turn", async () => {
  const tools = [{ type: "function", name: "get_weather", description: "Weather of a city", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] }, strict: true }];
  mock.set("s", { text: "", toolCalls: [{ id: "call_w1", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo"}' } }] });
  const first = await client.responses.create({ model: "council", input: "Weather in Oslo?", tools });
  const call = first.output.find((o) => o.type === "function_call");
  assert.deepEqual({ call_id: call.call_id, name: call.name, arguments: call.arguments, status: call.status }, { call_id: "call_w1", name: "get_weather", arguments: '{"city":"Oslo"}', status: "completed" });
  // The tools reach the summary model (Chat Completions' form), never the panel.
  assert.equal(mock.requestsFor("s")[0].body.tools[0].function.name, "get_weather");
  assert.equal(mock.requestsFor("p-1")[0].body.tools, undefined);

  mock.reset();
  mock.set("s", { text: "It is 12 °C and raining in Oslo." });
  const second = await client.responses.create({
    model: "council",
    tools,
    input: [{ role: "user", content: "Weather in Oslo?" }, call, { type: "function_call_output", call_id: "call_w1", output: '{"temp": 12, "sky": "rain"}' }],
  });
  assert.equal(second.output_text, "It is 12 °C and raining in Oslo.");
  // A tool result last: a tool turn, answered by the summary model alone (tool_turns "auto").
  assert.equal(second.n1.route, "summary");
  assert.equal(mock.requestsFor("p-1").length, 0);
  const msgs = mock.requestsFor("s")[0].body.messages;
  assert.deepEqual(msgs[1], { role: "assistant", content: null, tool_calls: [{ id: "call_w1", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo"}' } }] });
  assert.deepEqual(msgs[2], { role: "tool", content: '{"temp": 12, "sky": "rain"}', tool_call_id: "call_w1" });
});

test("a streamed function call: output_item.added, argument deltas, .done events, the call in the final response", async () => {
  mock.set("s", { text: null, toolCalls: [{ id: "call_s1", type: "function", function: { name: "lookup", arguments: '{"q":"n-1"}' } }] });
  const stream = client.responses.stream({ model: "council", input: "look it up", tools: [{ type: "function", name: "lookup", parameters: { type: "object" } }] });
  const events = [];
  for await (const e of stream) events.push(e);
  const final = await stream.finalResponse();
  const kinds = events.map((e) => e.type);
  assert.ok(kinds.indexOf("response.output_item.added") < kinds.indexOf("response.function_call_arguments.delta"), kinds.join());
  assert.ok(kinds.includes("response.function_call_arguments.done"));
  const done = events.find((e) => e.type === "response.function_call_arguments.done");
  assert.equal(done.arguments, '{"q":"n-1"}');
  assert.equal(done.name, "lookup");
  const call = final.output.find((o) => o.type === "function_call");
  assert.equal(call.call_id, "call_s1");
  assert.equal(call.arguments, '{"q":"n-1"}');
});

test("previous_response_id continues a stored conversation; another key cannot read it", async () => {
  mock.set("s", { text: "Nice to meet you, Ada." });
  const first = await client.responses.create({ model: "council", input: "My name is Ada." });
  mock.reset();
  mock.set("s", { text: "Your name is Ada." });
  const second = await client.responses.create({ model: "council", previous_response_id: first.id, input: "What is my name?" });
  assert.equal(second.output_text, "Your name is Ada.");
  assert.equal(second.previous_response_id, first.id);
  const msgs = mock.requestsFor("s")[0].body.messages.slice(1);
  assert.deepEqual(msgs, [
    { role: "user", content: "My name is Ada." },
    { role: "assistant", content: "Nice to meet you, Ada." },
    { role: "user", content: "What is my name?" },
  ]);
  // Streamed responses are stored too, before their stream ends.
  const stream = client.responses.stream({ model: "council", previous_response_id: second.id, input: "And again?" });
  const third = await stream.finalResponse();
  mock.reset();
  await client.responses.create({ model: "council", previous_response_id: third.id, input: "Once more?" });
  assert.equal(mock.requestsFor("s")[0].body.messages.length, 1 + 7);

  mock.reset();
  const bob = new OpenAI({ apiKey: BOB, baseURL: `${w.url}/v1`, maxRetries: 0 });
  await assert.rejects(bob.responses.create({ model: "council", previous_response_id: first.id, input: "What is her name?" }), (e) => {
    assert.equal(e.status, 400);
    assert.equal(e.code, "previous_response_not_found");
    return true;
  });
  assert.equal(mock.requests.length, 0, "no upstream call for a refused request");
  // store: false keeps nothing.
  const unstored = await client.responses.create({ model: "council", input: "forget me", store: false });
  await assert.rejects(client.responses.create({ model: "council", previous_response_id: unstored.id, input: "?" }), (e) => e.status === 400);
});

test("responses.retrieve and responses.delete: the stored response as created (streamed ones too), for its key only", async () => {
  mock.set("s", { text: "Stored answer." });
  const created = await client.responses.create({ model: "council", input: "Keep this." });
  const got = await client.responses.retrieve(created.id);
  assert.deepEqual(got, created, "the object the client received");
  let streamed;
  for await (const ev of await client.responses.create({ model: "council", input: "Keep this too.", stream: true })) {
    if (ev.type === "response.completed") streamed = ev.response;
  }
  const again = await client.responses.retrieve(streamed.id);
  assert.equal(again.output_text, "Stored answer.");
  assert.deepEqual({ ...again, output_text: undefined }, { ...streamed, output_text: undefined }, "the object of response.completed");
  mock.reset();
  // Another key: as if it did not exist; unknown ids alike.
  const bob = new OpenAI({ apiKey: BOB, baseURL: `${w.url}/v1`, maxRetries: 0 });
  for (const attempt of [() => bob.responses.retrieve(created.id), () => bob.responses.delete(created.id), () => client.responses.retrieve("resp_nope")]) {
    await assert.rejects(attempt(), (e) => e.status === 404 && e.code === "response_not_found" && /not found/.test(e.message));
  }
  // Deleted: gone for retrieve and for previous_response_id.
  const r = await fetch(`${w.url}/v1/responses/${created.id}`, { method: "DELETE", headers: { authorization: `Bearer ${ALICE}` } });
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { id: created.id, object: "response", deleted: true });
  await assert.rejects(client.responses.retrieve(created.id), (e) => e.status === 404);
  await assert.rejects(client.responses.create({ model: "council", previous_response_id: created.id, input: "?" }), (e) => e.status === 400);
  // Other methods: a 405 naming the allowed ones.
  const put = await fetch(`${w.url}/v1/responses/${streamed.id}`, { method: "PUT", headers: { authorization: `Bearer ${ALICE}` } });
  assert.equal(put.status, 405);
  assert.match((await put.json()).error.message, /use GET, DELETE/);
  assert.equal(mock.requests.length, 0);
});

test("a request shaped like Codex CLI's default: namespace tools flattened, hosted web_search dropped and named in n1, reasoning and the rest accepted", async () => {
  mock.set("s", { text: "Done.", chunks: 2 });
  const body = {
    model: "council",
    instructions: "You are Codex, a coding agent.",
    input: [
      { type: "message", role: "developer", content: [{ type: "input_text", text: "<permissions>workspace-write</permissions>" }] },
      { type: "message", role: "user", content: [{ type: "input_text", text: "<environment_context><cwd>/repo</cwd></environment_context>" }] },
      { type: "message", role: "user", content: [{ type: "input_text", text: "List the files." }] },
    ],
    tools: [
      { type: "function", name: "shell", description: "Runs a shell command", strict: false, parameters: { type: "object", properties: { command: { type: "array", items: { type: "string" } } }, required: ["command"] } },
      { type: "namespace", name: "mcp__files", description: "File tools", tools: [{ type: "function", name: "read_file", description: "Read a file", parameters: { type: "object", properties: { path: { type: "string" } } } }] },
      { type: "web_search", external_web_access: false },
    ],
    tool_choice: "auto",
    parallel_tool_calls: false,
    reasoning: { effort: "medium", summary: "auto" },
    store: false,
    stream: true,
    include: ["reasoning.encrypted_content"],
    prompt_cache_key: "019a-session",
    text: { verbosity: "low" },
    client_metadata: { "x-codex-turn": "1" },
  };
  const r = await post(body);
  assert.equal(r.status, 200);
  const { events } = parseSse(await r.text());
  const completed = events.find((e) => e.type === "response.completed");
  assert.equal(completed.response.status, "completed");
  assert.equal(completed.response.output[0].content[0].text, "Done.");
  assert.deepEqual(completed.response.n1.ignored_tools, ["web_search"]);
  const s = mock.requestsFor("s")[0].body;
  assert.deepEqual(s.tools.map((t) => t.function.name), ["shell", "read_file"]);
  assert.equal(s.reasoning_effort, "medium");
  assert.equal(s.parallel_tool_calls, false);
  assert.equal(s.prompt_cache_key, "019a-session");
  assert.equal(s.verbosity, "low");
  assert.deepEqual(s.messages.slice(1, 3).map((m) => m.role), ["system", "developer"]);
  // A call of a namespaced function names its namespace again.
  mock.set("s", { text: "", toolCalls: [{ id: "call_rf", type: "function", function: { name: "read_file", arguments: '{"path":"a.txt"}' } }] });
  const nb = await (await post({ ...body, stream: false })).json();
  const call = nb.output.find((o) => o.type === "function_call");
  assert.deepEqual({ name: call.name, namespace: call.namespace }, { name: "read_file", namespace: "mcp__files" });
});

test("a tool_choice that forces a hosted tool is a 400 naming it; bad input is a 400 naming the field; no upstream call", async () => {
  const bad = async (body, param) => {
    const r = await post(body);
    assert.equal(r.status, 400);
    assert.equal(r.headers.get("content-type"), "application/json");
    const { error } = await r.json();
    assert.equal(error.type, "invalid_request_error");
    assert.equal(error.param, param);
    return error;
  };
  const e = await bad({ model: "council", input: "x", tools: [{ type: "web_search" }], tool_choice: { type: "web_search" } }, "tool_choice");
  assert.match(e.message, /web_search/);
  await bad({ model: "council", input: 5 }, "input");
  await bad({ model: "council", input: [{ type: "message", role: "wizard", content: "x" }] }, "input[0].role");
  await bad({ model: "council", input: [{ type: "function_call_output", output: "x" }] }, "input[0].call_id");
  await bad({ model: "council", input: "x", temperature: 7 }, "temperature");
  await bad({ model: "council", input: "x", max_output_tokens: 0 }, "max_output_tokens");
  await bad({ model: "council" }, "input");
  assert.equal(mock.requests.length, 0);
  const nf = await post({ model: "nope", input: "x" });
  assert.equal(nf.status, 404);
  assert.equal((await nf.json()).error.code, "model_not_found");
});

test("text.format json_schema reaches the summary model as response_format; max_output_tokens as max_completion_tokens; a cut answer is incomplete", async () => {
  mock.set("s", { text: '{"a": 1', finishReason: "length" });
  const format = { type: "json_schema", name: "thing", schema: { type: "object", properties: { a: { type: "number" } } }, strict: true };
  const r = await client.responses.create({ model: "council", input: "give json", text: { format }, max_output_tokens: 50 });
  const s = mock.requestsFor("s")[0].body;
  assert.deepEqual(s.response_format, { type: "json_schema", json_schema: { name: "thing", schema: format.schema, strict: true } });
  assert.equal(s.max_completion_tokens, 50);
  assert.equal(r.status, "incomplete");
  assert.deepEqual(r.incomplete_details, { reason: "max_output_tokens" });
  assert.deepEqual(r.text, { format });
});

test("resilience in the Responses shape: a partial panel is a degraded answer; all failed is a 502, or response.failed when streaming", async () => {
  mock.set("pp-bad", { status: 500 });
  const partial = await client.responses.create({ model: "partial", input: "q" });
  assert.equal(partial.status, "completed");
  assert.equal(partial.n1.degraded, true);
  assert.deepEqual(partial.n1.panel.map((p) => p.status), ["ok", "error"]);

  mock.set("fp-1", { status: 500 });
  mock.set("fp-2", { status: 503 });
  await assert.rejects(client.responses.create({ model: "failing", input: "q" }), (e) => {
    assert.equal(e.status, 502);
    assert.equal(e.code, "panel_failed");
    return true;
  });
  const stream = client.responses.stream({ model: "failing", input: "q" });
  const events = [];
  for await (const e of stream) events.push(e);
  const failed = events.at(-1);
  assert.equal(failed.type, "response.failed");
  assert.equal(failed.response.status, "failed");
  assert.equal(failed.response.error.code, "panel_failed");
  assert.match(failed.response.error.message, /fp-1/);
});

test("resilience: a summary stream cut after content ends in response.failed; one failing before its first token falls back", async () => {
  mock.set("s", { text: "partial answer that will be cut", chunks: 6, fault: "cut" });
  const r = await post({ model: "council", input: "q", stream: true });
  const { events } = parseSse(await r.text());
  const last = events.at(-1);
  assert.equal(last.type, "response.failed");
  assert.equal(last.response.error.code, "stream_error");
  assert.ok(events.some((e) => e.type === "response.output_text.delta"), "the content that arrived was relayed");
  assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));

  mock.set("fb-s1", { status: 500 });
  mock.set("fb-s2", { text: "from the fallback" });
  const stream = client.responses.stream({ model: "fallback", input: "q" });
  const final = await stream.finalResponse();
  assert.equal(final.output_text, "from the fallback");
  assert.deepEqual(final.n1.summary.failed.map((f) => f.model), ["fb-s1"]);
});

test("resilience: a panel model past its timeout is cut; the request ceiling is a 504, or response.failed when streaming", async () => {
  mock.set("sl-p", { delayMs: 3000 });
  const r = await client.responses.create({ model: "slow", input: "q" });
  assert.equal(r.n1.panel[0].status, "timeout");
  assert.equal(r.status, "completed");

  mock.set("cl-s", { delayMs: 3000 });
  await assert.rejects(client.responses.create({ model: "ceiling", input: "q" }), (e) => e.status === 504 && e.code === "request_timeout");
  const res = await post({ model: "ceiling", input: "q", stream: true });
  const { events } = parseSse(await res.text());
  assert.equal(events.at(-1).type, "response.failed");
  assert.equal(events.at(-1).response.error.code, "request_timeout");
});

test("resilience: streams left open after their last event ([DONE], message_stop) are complete answers, created or streamed", async () => {
  for (const model of ["ho-p", "ho-claude", "ho-s"]) mock.set(model, { holdOpen: true, text: `answer from ${model}`, chunks: 3 });
  const r = await client.responses.create({ model: "heldopen", input: "q" });
  assert.equal(r.status, "completed");
  assert.equal(r.output_text, "answer from ho-s");
  assert.deepEqual(r.n1.panel.map((p) => p.status), ["ok", "ok"]);
  const stream = client.responses.stream({ model: "heldopen", input: "q" });
  const events = [];
  for await (const e of stream) events.push(e);
  assert.equal(events.at(-1).type, "response.completed");
  assert.ok(!events.some((e) => e.type === "response.failed" || e.type === "error"), JSON.stringify(events.at(-1)));
  const final = await stream.finalResponse();
  assert.equal(final.output_text, "answer from ho-s");
  assert.deepEqual(final.n1.panel.map((p) => p.status), ["ok", "ok"]);
});

test("mixed providers: an OpenAI-compatible and an Anthropic panel member answer through /v1/responses and /v1/chat/completions alike, usage summed", async () => {
  mock.set("mx-openai", { text: "openai says 4" });
  mock.set("mx-claude", { text: "claude says four" });
  mock.set("mx-s", { text: "Four." });
  const r = await client.responses.create({ model: "mixed", input: "2+2?" });
  const c = await client.chat.completions.create({ model: "mixed", messages: [{ role: "user", content: "2+2?" }] });
  assert.equal(r.output_text, "Four.");
  assert.equal(c.choices[0].message.content, "Four.");
  assert.equal(r.usage.total_tokens, c.usage.total_tokens);
  assert.equal(r.usage.total_tokens, 45);
  const synth = mock.requestsFor("mx-s")[0].body.messages[0].content;
  assert.match(synth, /openai says 4/);
  assert.match(synth, /claude says four/);
});
