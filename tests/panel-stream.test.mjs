// Issue 15 through real HTTP: streamed panel calls (time to first token, live
// panel_delta events, idle cuts), the straggler cutoff, tool turns, background
// tasks and reasoning deltas; the worker in workerd, the mock upstream, the
// official openai client.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startMockUpstream } from "./helpers/mock-upstream.mjs";
import { startWorker, mockModel, postChat, parseSse } from "./helpers/worker.mjs";

let mock, w, client;
const user = (content) => [{ role: "user", content }];
const m = (name, extra) => mockModel(mock, name, extra);

function config() {
  return {
    ensembles: {
      live: { panel: [m("lv-a"), m("lv-b", { timeout_ms: 800, max_retries: 0 })], summary: m("lv-s"), progress: false },
      strag: { panel: [m("sg-1"), m("sg-2"), m("sg-3")], summary: m("sg-s"), min_panel: 2, straggler: { factor: 2, min_ms: 0 } },
      nostrag: { panel: [m("ns-1"), m("ns-2"), m("ns-3")], summary: m("ns-s"), min_panel: 2 },
      tools: { panel: [m("tt-p1"), m("tt-p2")], summary: m("tt-s") },
      toolsum: { panel: [m("ts-p")], summary: m("ts-s"), tool_turns: "summary" },
      toolens: { panel: [m("te-p")], summary: m("te-s"), tool_turns: "ensemble" },
      tasks: { panel: [m("tk-p1"), m("tk-p2")], summary: m("tk-s"), task_model: m("tk-cheap") },
      think: { panel: [m("th-p")], summary: m("th-s") },
      reuse: { panel: [m("ru-1"), m("ru-2")], summary: m("ru-s") },
    },
  };
}

before(async () => {
  mock = await startMockUpstream();
  w = await startWorker({ config: config() });
  client = new OpenAI({ apiKey: "x", baseURL: `${w.url}/v1`, maxRetries: 0 });
});
after(async () => {
  await w?.close();
  await mock?.close();
});
beforeEach(() => mock.reset());

const tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object" } } }];
const call = { id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo"}' } };
const toolTurn = [...user("weather in Oslo?"), { role: "assistant", content: null, tool_calls: [call] }, { role: "tool", tool_call_id: "call_1", content: "12 C" }];

test("streamed panel: ttft_ms per member; panel_delta events arrive before the member is done; a member that stops mid-stream is cut by its idle timeout", async () => {
  mock.set("lv-a", { text: "alpha beta gamma delta epsilon zeta", chunks: 6, delayMs: 300, chunkDelayMs: 150 });
  mock.set("lv-b", { text: "started then stuck", chunks: 3, fault: "stall" });
  mock.set("lv-s", { text: "synthesis" });
  const t0 = Date.now();
  const r = await postChat(w.url, { model: "live", stream: true, n1: { progress: true }, messages: user("q") });
  assert.equal(r.status, 200);
  const arrivals = [];
  const dec = new TextDecoder();
  let text = "";
  for await (const piece of r.body) {
    text += dec.decode(piece, { stream: true });
    arrivals.push({ at: Date.now() - t0, len: text.length });
  }
  const { events } = parseSse(text);
  const progress = events.filter((e) => e.n1_progress).map((e) => e.n1_progress);
  const deltas = progress.filter((p) => p.type === "panel_delta" && p.model === "lv-a");
  assert.ok(deltas.length >= 2, JSON.stringify(progress.map((p) => p.type)));
  assert.equal(deltas.map((d) => d.content).join(""), "alpha beta gamma delta epsilon zeta");
  // The first delta reached the client well before lv-a finished (6 chunks 150 ms apart).
  const firstDeltaAt = text.indexOf('"panel_delta"');
  const memberAt = text.indexOf('"type":"panel_member","index":0');
  assert.ok(firstDeltaAt > 0 && firstDeltaAt < memberAt, "a delta precedes lv-a's panel_member event");
  const byteOfFirstDelta = arrivals.find((a) => a.len > firstDeltaAt).at;
  const byteOfMember = arrivals.find((a) => a.len > memberAt).at;
  assert.ok(byteOfMember - byteOfFirstDelta >= 300, `the delta arrived ${byteOfMember - byteOfFirstDelta} ms before the member finished`);
  const fin = events.find((e) => e.n1);
  const [a, b] = fin.n1.panel;
  assert.equal(a.status, "ok");
  // ttft: the 300 ms before the headers, then the first chunk at once.
  assert.ok(a.ttft_ms >= 280 && a.ttft_ms < 700, `ttft ${a.ttft_ms}`);
  assert.ok(a.latency_ms >= a.ttft_ms + 600, `latency ${a.latency_ms} is to the last chunk`);
  assert.equal(b.status, "timeout");
  assert.match(b.error.reason, /sent nothing for 800 ms/);
  assert.ok(b.ttft_ms !== undefined, "it had started: stuck, not slow");
  await mock.waitFor(() => mock.requestsFor("lv-b")[0]?.endedAt);
  assert.equal(mock.requestsFor("lv-b")[0].closedEarly, true, "the stuck stream is aborted");
  assert.equal(streamTextOf(events), "synthesis");
  // Every panel call asked for a stream.
  assert.ok(mock.requestsFor("lv-a").every((q) => q.body.stream === true && q.body.stream_options?.include_usage === true));
});

function streamTextOf(events) {
  return events.filter((e) => e !== "[DONE]" && !e.error && !e.n1_progress).map((e) => e.choices?.[0]?.delta?.content ?? "").join("");
}

test("straggler cutoff: panel at 0.3/0.4/8 s with min_panel 2, factor 2: the summary starts by ~0.8 s, the 8 s call is aborted, n1 says why", async () => {
  mock.set("sg-1", { delayMs: 300 });
  mock.set("sg-2", { delayMs: 400 });
  mock.set("sg-3", { delayMs: 8000 });
  const t0 = Date.now();
  const body = await (await postChat(w.url, { model: "strag", messages: user("q") })).json();
  const summaryAt = mock.requestsFor("sg-s")[0].startedAt - t0;
  assert.ok(summaryAt >= 700 && summaryAt < 1500, `the summary started at ${summaryAt} ms`);
  assert.equal(body.n1.panel_end, "straggler");
  assert.equal(body.n1.panel[2].status, "cancelled");
  assert.match(body.n1.panel[2].error.reason, /straggler/);
  await mock.waitFor(() => mock.requestsFor("sg-3")[0]?.endedAt);
  assert.equal(mock.requestsFor("sg-3")[0].closedEarly, true);
  // Off by default: the same panel waits for the 8 s member... up to its answer.
  mock.set("ns-1", { delayMs: 300 });
  mock.set("ns-2", { delayMs: 400 });
  mock.set("ns-3", { delayMs: 1500 });
  const plain = await (await postChat(w.url, { model: "nostrag", messages: user("q") })).json();
  assert.equal(plain.n1.panel_end, "all");
  assert.equal(plain.n1.panel_ok, 3);
});

test("tool turns: with auto a tool-result turn makes exactly one upstream call; a first turn with tools still fans out; summary and ensemble behave as named", async () => {
  const r = await client.chat.completions.create({ model: "tools", messages: toolTurn, tools });
  assert.equal(mock.requests.length, 1);
  assert.equal(mock.requestsFor("tt-s").length, 1);
  assert.equal(r.n1.route, "summary");
  assert.deepEqual(mock.requestsFor("tt-s")[0].body.messages, toolTurn, "the conversation as it is, no synthesis prompt");
  mock.reset();
  const first = await client.chat.completions.create({ model: "tools", messages: user("weather in Oslo?"), tools });
  assert.equal(first.n1.route, "ensemble");
  assert.equal(mock.requests.length, 3);
  mock.reset();
  await client.chat.completions.create({ model: "toolsum", messages: user("weather?"), tools });
  assert.deepEqual(mock.requests.map((q) => q.model), ["ts-s"], "summary: any request with tools skips the panel");
  mock.reset();
  const ens = await client.chat.completions.create({ model: "toolens", messages: toolTurn, tools });
  assert.equal(ens.n1.route, "ensemble");
  assert.deepEqual(mock.requests.map((q) => q.model).sort(), ["te-p", "te-s"], "ensemble: the panel even on a tool turn");
  // Streaming too.
  mock.reset();
  const s = await postChat(w.url, { model: "tools", stream: true, messages: toolTurn, tools });
  const { events } = parseSse(await s.text());
  assert.equal(events.find((e) => e.n1).n1.route, "summary");
  assert.equal(mock.requests.length, 1);
});

test("background tasks: an Open WebUI title request (its real prompt) and the explicit header each make one call to task_model; an ordinary question still fans out", async () => {
  const title = `### Task:
Generate a concise, 3-5 word title with an emoji summarizing the chat history.
### Guidelines:
- The title should clearly represent the main theme or subject of the conversation.
- Use emojis that enhance understanding of the topic, but avoid quotation marks or special formatting.
### Output:
JSON format: { "title": "your concise title here" }
### Chat History:
<chat_history>
USER: Why is the sky blue?
ASSISTANT: Because of Rayleigh scattering.
</chat_history>`;
  mock.set("tk-cheap", { text: '{ "title": "🌌 Blue Sky Science" }' });
  const r = await client.chat.completions.create({ model: "tasks", messages: user(title), stream: false });
  assert.deepEqual(mock.requests.map((q) => q.model), ["tk-cheap"]);
  assert.equal(r.n1.route, "task");
  assert.equal(r.choices[0].message.content, '{ "title": "🌌 Blue Sky Science" }');
  mock.reset();
  const h = await postChat(w.url, { model: "tasks", messages: user("tags please") }, { "x-n1-direct": "1" });
  assert.equal((await h.json()).n1.route, "direct");
  assert.deepEqual(mock.requests.map((q) => q.model), ["tk-cheap"]);
  mock.reset();
  await postChat(w.url, { model: "tasks", messages: user("tags please"), n1: { direct: true } });
  assert.deepEqual(mock.requests.map((q) => q.model), ["tk-cheap"]);
  mock.reset();
  const q = await client.chat.completions.create({ model: "tasks", messages: user("Why is the sky blue?") });
  assert.equal(q.n1.route, "ensemble");
  assert.deepEqual(mock.requests.map((x) => x.model).sort(), ["tk-p1", "tk-p2", "tk-s"]);
  // LibreChat's title prompt, without a task_model: the summary model alone.
  mock.reset();
  await client.chat.completions.create({ model: "tools", messages: [...user("hi"), { role: "user", content: "Please generate a concise, 5-word-or-less title for the conversation, using its same language, with no punctuation." }] });
  assert.deepEqual(mock.requests.map((x) => x.model), ["tt-s"]);
});

test("reasoning deltas of the summary model reach the openai client in both modes, under the field the provider used; panel reasoning never enters the synthesis", async () => {
  mock.set("th-p", { text: "panel answer", reasoning: "PANEL-PRIVATE-THOUGHTS" });
  mock.set("th-s", { text: "final", reasoning: "let me think step by step" });
  const r = await client.chat.completions.create({ model: "think", messages: user("q") });
  assert.equal(r.choices[0].message.content, "final");
  assert.equal(r.choices[0].message.reasoning_content, "let me think step by step");
  const system = mock.requestsFor("th-s")[0].body.messages[0].content;
  assert.match(system, /panel answer/);
  assert.ok(!system.includes("PANEL-PRIVATE-THOUGHTS"));

  const stream = await client.chat.completions.create({ model: "think", messages: user("q"), stream: true });
  let reasoning = "";
  let content = "";
  for await (const c of stream) {
    reasoning += c.choices[0]?.delta?.reasoning_content ?? "";
    content += c.choices[0]?.delta?.content ?? "";
  }
  assert.equal(reasoning, "let me think step by step");
  assert.equal(content, "final");
  // OpenRouter-style `reasoning` is relayed as `reasoning`.
  mock.set("th-s", { text: "final", reasoning: "short thought", reasoningField: "reasoning" });
  const s2 = await postChat(w.url, { model: "think", stream: true, messages: user("q") });
  const { events } = parseSse(await s2.text());
  assert.equal(events.filter((e) => e.choices?.[0]?.delta?.reasoning).map((e) => e.choices[0].delta.reasoning).join(""), "short thought");
});

test("a stream read to its last event ([DONE]) leaves its connection to the next call: chunked panel and summary streams reuse connections", async () => {
  // The mock streams with chunked framing, as providers do. Each request makes 3 calls
  // (2 at once); a worker that dropped or cancelled a body after [DONE] would need
  // new connections every time (measured: 91 for 120 calls instead of 3).
  for (const model of ["ru-1", "ru-2", "ru-s"]) mock.set(model, { text: `answer from ${model}`, chunks: 3 });
  const first = mock.connections;
  for (let i = 0; i < 6; i++) {
    const stream = i % 2 === 1;
    const r = await postChat(w.url, { model: "reuse", messages: user("q"), ...(stream ? { stream: true } : {}) });
    assert.equal(r.status, 200);
    const text = await r.text();
    const answer = stream
      ? parseSse(text).events.filter((e) => e !== "[DONE]").map((e) => e.choices?.[0]?.delta?.content ?? "").join("")
      : JSON.parse(text).choices[0].message.content;
    assert.equal(answer, "answer from ru-s");
  }
  assert.equal(mock.requests.length, 18);
  assert.ok(mock.requests.filter((r) => r.body.stream === true).length >= 15, "panel calls and streamed summaries are streams");
  const opened = mock.connections - first;
  assert.ok(opened <= 4, `${opened} new connections for 18 calls`);
});
