// Fault injection through real HTTP, both output modes: every upstream fault
// must end in a well-formed completion or a well-formed error, on time.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startMockUpstream } from "./helpers/mock-upstream.mjs";
import { startWorker, mockModel, postChat, parseSse } from "./helpers/worker.mjs";

let mock, w, client;
const user = (content) => [{ role: "user", content }];

function config() {
  const m = (name, extra) => mockModel(mock, name, extra);
  const e = (panel, summary, policy = {}) => ({ panel: panel.map((p) => (typeof p === "string" ? m(p) : p)), summary, ...policy });
  return {
    ensembles: {
      timeout: e([m("t-slow", { timeout_ms: 300, max_retries: 0 }), "t-ok"], m("t-s")),
      retry: e(["r-429", "r-500", "r-400", "r-bad"], m("r-s")),
      stream: e(["st-p"], m("st-s")),
      stall: e(["sl-p"], m("sl-s", { timeout_ms: 400 })),
      allfail: e([m("af-1", { timeout_ms: 300 }), "af-2", "af-3"], m("af-s")),
      fallback: e(["fb-p"], [m("fb-s1", { max_retries: 0 }), m("fb-s2")]),
      quorum: e(["q-1", "q-2", "q-3"], m("q-s"), { quorum: 2 }),
      // 8 members, 6 open at once: when the quorum of 1 is reached, 2 are still queued.
      queued: e(Array.from({ length: 8 }, (_, i) => `qq-${i}`), m("qq-s"), { quorum: 1 }),
      paneltimeout: e(["pt-fast", "pt-slow"], m("pt-s"), { panel_timeout_ms: 500 }),
      minpanel: e(["mp-1", m("mp-2", { max_retries: 0 })], m("mp-s"), { min_panel: 2 }),
      best: e(["bp-1", "bp-2"], m("bp-s", { max_retries: 0 }), { on_summary_failure: "best_panel_answer" }),
      disconnect: e(["dc-p"], m("dc-s")),
      disconnect2: e(["dc2-p"], m("dc2-s"), { keep_alive_ms: 300 }),
      ceiling: e(["cl-p"], m("cl-s"), { request_timeout_ms: 1000 }),
      keepalive: e(["ka-p"], m("ka-s"), { keep_alive_ms: 200 }),
      progress: e(["pg-1", "pg-2"], m("pg-s")),
      binary: e(["bin-ok", m("bin-200", { max_retries: 0 }), m("bin-500", { max_retries: 0 })], m("bin-s")),
      // Streams whose last event comes, then nothing, the connection open; timeouts short
      // enough that waiting for the body's end would fail the members.
      heldopen: e(
        [m("ho-p", { timeout_ms: 1500, max_retries: 0 }), { provider: "anthropic", endpoint: `${mock.url}/v1`, model: "ho-claude", timeout_ms: 1500, max_retries: 0 }],
        m("ho-s", { timeout_ms: 1500, max_retries: 0 }),
      ),
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

async function both(model, extra = {}) {
  const r1 = await postChat(w.url, { model, messages: user("q"), ...extra });
  const nonStream = { status: r1.status, headers: r1.headers, body: await r1.json() };
  const r2 = await postChat(w.url, { model, messages: user("q"), stream: true, ...extra });
  assert.equal(r2.status, 200);
  const { events, comments } = parseSse(await r2.text());
  return { nonStream, events, comments };
}

const finishChunk = (events) => events.find((e) => e !== "[DONE]" && e.choices?.[0]?.finish_reason);
const streamText = (events) =>
  events.filter((e) => e !== "[DONE]" && !e.error).map((e) => e.choices?.[0]?.delta?.content ?? "").join("");

test("a panel model slower than its timeout is aborted and reported as timeout; the rest is synthesized", async () => {
  mock.set("t-slow", { delayMs: 3000 });
  const t0 = Date.now();
  const { nonStream, events } = await both("timeout");
  assert.ok(Date.now() - t0 < 2500, "neither mode waited for the slow model");
  assert.equal(nonStream.status, 200);
  assert.equal(nonStream.body.n1.panel[0].status, "timeout");
  assert.equal(nonStream.body.n1.panel[1].status, "ok");
  assert.equal(nonStream.headers.get("x-n1-panel"), "1/2");
  assert.equal(finishChunk(events).n1.panel[0].status, "timeout");
  assert.equal(events.at(-1), "[DONE]");
  await mock.waitFor(() => mock.requestsFor("t-slow").every((r) => r.endedAt));
  assert.ok(mock.requestsFor("t-slow").every((r) => r.closedEarly), "the slow fetch was aborted");
});

test("streams left open after their last event ([DONE], message_stop) are complete answers, and are let go", async () => {
  for (const model of ["ho-p", "ho-claude", "ho-s"]) mock.set(model, { holdOpen: true, text: `answer from ${model}`, chunks: 3 });
  const { nonStream, events } = await both("heldopen");
  assert.equal(nonStream.status, 200);
  assert.deepEqual(nonStream.body.n1.panel.map((p) => p.status), ["ok", "ok"], JSON.stringify(nonStream.body.n1.panel));
  assert.equal(nonStream.body.n1.summary.status, "ok");
  assert.equal(nonStream.body.choices[0].message.content, "answer from ho-s");
  // The summary saw both panel answers whole.
  const summaryCall = mock.requestsFor("ho-s").at(-1).body.messages[0].content;
  assert.match(summaryCall, /answer from ho-p/);
  assert.match(summaryCall, /answer from ho-claude/);
  // Streaming: the summary's stream is relayed to its end, with no error event.
  assert.equal(streamText(events), "answer from ho-s");
  assert.ok(!events.some((e) => e !== "[DONE]" && e.error), JSON.stringify(events.filter((e) => e.error)));
  const fin = finishChunk(events);
  assert.equal(fin.choices[0].finish_reason, "stop");
  assert.equal(fin.n1.summary.status, "ok");
  assert.deepEqual(fin.n1.panel.map((p) => p.status), ["ok", "ok"]);
  assert.equal(events.at(-1), "[DONE]");
  // The worker let every held connection go (the non-streaming summary call is a
  // plain JSON reply, ended by the mock).
  const held = mock.requests.filter((r) => r.body.stream === true);
  assert.equal(held.length, 5);
  await mock.waitFor(() => held.every((r) => r.endedAt));
  assert.ok(held.every((r) => r.closedEarly), "each held stream was let go by the worker");
});

test("429 with Retry-After, then success: the worker waits as told and retries", async () => {
  mock.set("r-429", [{ status: 429, headers: { "retry-after": "1" } }, { text: "after 429" }]);
  const r = await client.chat.completions.create({ model: "retry", messages: user("q") });
  const calls = mock.requestsFor("r-429");
  assert.equal(calls.length, 2);
  assert.ok(calls[1].startedAt - calls[0].startedAt >= 950, `waited ${calls[1].startedAt - calls[0].startedAt} ms`);
  assert.equal(r.n1.panel[0].status, "ok");
  assert.equal(r.n1.panel[0].attempts, 2);
});

test("500 twice then success; a 400 is not retried; malformed JSON is a failure", async () => {
  mock.set("r-500", [{ status: 500 }, { status: 502 }, { text: "third" }]);
  mock.set("r-400", { status: 400, errorBody: { error: { message: "bad param" } } });
  mock.set("r-bad", { fault: "malformed-json" });
  const r = await postChat(w.url, { model: "retry", messages: user("q") });
  const body = await r.json();
  assert.equal(mock.requestsFor("r-500").length, 3);
  assert.equal(body.n1.panel[1].status, "ok");
  assert.equal(body.n1.panel[1].attempts, 3);
  assert.equal(mock.requestsFor("r-400").length, 1);
  assert.equal(body.n1.panel[2].status, "error");
  assert.match(body.n1.panel[2].error.reason, /bad param/);
  assert.equal(body.n1.panel[3].status, "error");
  // Panel calls are streamed: a malformed reply is a malformed stream.
  assert.match(body.n1.panel[3].error.reason, /stream was malformed: an event that is not JSON/);
  assert.match(mock.requestsFor("r-s")[0].body.messages[0].content, /third/);
});

for (const [fault, what] of [
  ["cut", "a stream cut mid-answer"],
  ["no-done", "a stream that ends without finish_reason or [DONE]"],
  ["garbage", "garbage bytes in the stream"],
  ["error-event", "an error event mid-stream"],
]) {
  test(`${what}: the client gets the content so far, an error event, then [DONE]`, async () => {
    mock.set("st-s", { text: "one two three four five six seven eight", chunks: 8, fault });
    const r = await postChat(w.url, { model: "stream", stream: true, messages: user("q") });
    const { events } = parseSse(await r.text());
    assert.equal(events.at(-1), "[DONE]");
    const err = events.at(-2).error;
    assert.ok(err, JSON.stringify(events.slice(-3)));
    assert.equal(err.type, "upstream_error");
    assert.equal(err.code, "stream_error");
    assert.ok(streamText(events).length > 0, "partial content was relayed");
    assert.ok(!finishChunk(events), "no finish_reason: the answer is not presented as complete");
  });
}

test("a summary stream that stalls ends with an error event after the model's timeout, and is aborted", async () => {
  mock.set("sl-s", { text: "first second", chunks: 2, chunkDelayMs: 5000 });
  const t0 = Date.now();
  const r = await postChat(w.url, { model: "stall", stream: true, messages: user("q") });
  const { events } = parseSse(await r.text());
  assert.ok(Date.now() - t0 < 3000, `${Date.now() - t0} ms`);
  // The mock stalls before its first content chunk.
  assert.equal(streamText(events), "");
  assert.equal(events.at(-2).error.code, "summary_failed");
  assert.match(events.at(-2).error.message, /sent nothing for 400 ms/);
  assert.equal(events.at(-1), "[DONE]");
  await mock.waitFor(() => mock.requestsFor("sl-s")[0].endedAt);
  assert.equal(mock.requestsFor("sl-s")[0].closedEarly, true, "the stalled stream was aborted");
});

test("a summary stream slower overall than the model's timeout, but never idle that long, is relayed whole", async () => {
  // 6 chunks 250 ms apart: 1.5 s in all against a 400 ms idle timeout, which counts from the last read.
  mock.set("sl-s", { text: "one two three four five six", chunks: 6, chunkDelayMs: 250 });
  const r = await postChat(w.url, { model: "stall", stream: true, messages: user("q") });
  const { events } = parseSse(await r.text());
  assert.equal(events.at(-1), "[DONE]");
  assert.ok(!events.some((e) => e.error), JSON.stringify(events.filter((e) => e.error)));
  assert.equal(streamText(events), "one two three four five six");
  assert.equal(finishChunk(events).choices[0].finish_reason, "stop");
});

test("answers that are not UTF-8 (a 200 and an error body) are reported failures, never a crash or mojibake", async () => {
  mock.set("bin-200", { fault: "binary" });
  mock.set("bin-500", { status: 500, errorBody: Buffer.from([0xff, 0xfe, 0x41, 0x42, 0x80]) });
  const { nonStream, events } = await both("binary");
  assert.equal(nonStream.status, 200, JSON.stringify(nonStream.body));
  const panel = nonStream.body.n1.panel;
  assert.deepEqual(panel.map((p) => p.status), ["ok", "error", "error"]);
  assert.match(panel[1].error.reason, /not valid UTF-8/);
  assert.equal(panel[2].error.status, 500);
  // Only the good answer reaches the summary model.
  const system = mock.requestsFor("bin-s")[0].body.messages[0].content;
  assert.match(system, /answer from bin-ok/);
  assert.ok(!system.includes("garbage"));
  assert.equal(events.at(-1), "[DONE]");
  assert.ok(finishChunk(events).n1.panel[1].error.reason.includes("UTF-8"));
});

test("all panel models failing in different ways: 502 / error event naming each", async () => {
  mock.set("af-1", { fault: "hang" });
  mock.set("af-2", { status: 503 });
  mock.set("af-3", { fault: "malformed-json" });
  const { nonStream, events } = await both("allfail");
  assert.equal(nonStream.status, 502);
  const msg = nonStream.body.error.message;
  assert.match(msg, /af-1 \(timeout\)/);
  assert.match(msg, /af-2 \(HTTP 503\)/);
  assert.match(msg, /af-3 \(HTTP 200\)/);
  assert.equal(events.at(-2).error.code, "panel_failed");
  assert.equal(events.at(-1), "[DONE]");
  assert.equal(mock.requestsFor("af-s").length, 0);
});

test("summary failing falls back to the next summary model, in both modes", async () => {
  mock.set("fb-s1", { status: 500 });
  mock.set("fb-s2", { text: "fallback synthesis" });
  const { nonStream, events } = await both("fallback");
  assert.equal(nonStream.status, 200);
  assert.equal(nonStream.body.choices[0].message.content, "fallback synthesis");
  assert.equal(nonStream.body.n1.summary.model, "fb-s2");
  assert.equal(nonStream.body.n1.summary.failed[0].model, "fb-s1");
  assert.equal(streamText(events), "fallback synthesis");
  assert.equal(finishChunk(events).n1.summary.model, "fb-s2");
});

test("a summary stream that breaks before its first token falls back too", async () => {
  mock.set("fb-s1", { fault: "malformed-json" });
  mock.set("fb-s2", { text: "second summary" });
  const r = await postChat(w.url, { model: "fallback", stream: true, messages: user("q") });
  const { events } = parseSse(await r.text());
  assert.equal(streamText(events), "second summary");
  assert.ok(!events.some((e) => e.error));
  assert.equal(finishChunk(events).n1.summary.failed[0].model, "fb-s1");
});

test("quorum: synthesis starts once 2 of 3 answered; the straggler is aborted", async () => {
  mock.set("q-3", { delayMs: 4000 });
  const t0 = Date.now();
  const r = await postChat(w.url, { model: "quorum", messages: user("q") });
  assert.ok(Date.now() - t0 < 2000);
  const body = await r.json();
  assert.equal(body.n1.panel_end, "quorum");
  assert.equal(body.n1.panel[2].status, "cancelled");
  await mock.waitFor(() => mock.requestsFor("q-3")[0]?.endedAt);
  assert.equal(mock.requestsFor("q-3")[0].closedEarly, true);
});

test("quorum with members still queued: those made no attempt and report attempts 0", async () => {
  for (let i = 1; i < 8; i++) mock.set(`qq-${i}`, { delayMs: 3000 });
  const body = await (await postChat(w.url, { model: "queued", messages: user("q") })).json();
  assert.equal(body.n1.panel_end, "quorum");
  assert.deepEqual(body.n1.panel.map((p) => p.status), ["ok", ...Array(7).fill("cancelled")]);
  // qq-1..qq-5 were sent (6 open at once), qq-6 and qq-7 never left the queue.
  assert.deepEqual(body.n1.panel.map((p) => p.attempts), [1, 1, 1, 1, 1, 1, 0, 0]);
  assert.equal(mock.requestsFor("qq-6").length + mock.requestsFor("qq-7").length, 0);
});

test("panel_timeout_ms: stragglers are aborted and the synthesis proceeds with what came back", async () => {
  mock.set("pt-slow", { delayMs: 4000 });
  const t0 = Date.now();
  const { nonStream, events } = await both("paneltimeout");
  assert.ok(Date.now() - t0 < 2500);
  assert.equal(nonStream.body.n1.panel[1].status, "timeout");
  assert.equal(nonStream.body.n1.panel_end, "timeout");
  assert.equal(finishChunk(events).n1.panel_end, "timeout");
  await mock.waitFor(() => mock.requestsFor("pt-slow").every((r) => r.endedAt));
  assert.ok(mock.requestsFor("pt-slow").every((r) => r.closedEarly));
});

test("min_panel: fewer answers than required is a 502 / error event", async () => {
  mock.set("mp-2", { status: 400 });
  const { nonStream, events } = await both("minpanel");
  assert.equal(nonStream.status, 502);
  assert.match(nonStream.body.error.message, /\(1, 2 needed\)/);
  assert.equal(events.at(-2).error.code, "panel_failed");
});

test("on_summary_failure: best_panel_answer returns the first panel answer, labelled", async () => {
  mock.set("bp-1", { text: "PANEL ONE" });
  mock.set("bp-s", { status: 500 });
  const { nonStream, events } = await both("best");
  assert.equal(nonStream.status, 200);
  assert.equal(nonStream.body.choices[0].message.content, "PANEL ONE");
  assert.equal(nonStream.headers.get("x-n1-fallback"), "best_panel_answer");
  assert.equal(nonStream.body.n1.summary.status, "best_panel_answer");
  assert.equal(nonStream.body.n1.degraded, true);
  assert.equal(streamText(events), "PANEL ONE");
  assert.equal(finishChunk(events).n1.summary.status, "best_panel_answer");
});

test("client disconnect mid-stream aborts the summary request", async () => {
  mock.set("dc-s", { text: "x".repeat(400), chunks: 100, chunkDelayMs: 50 });
  const ac = new AbortController();
  const r = await postChat(w.url, { model: "disconnect", stream: true, messages: user("q") }, {}, ac.signal);
  const reader = r.body.getReader();
  let got = "";
  while (!got.includes('"content":"x')) got += new TextDecoder().decode((await reader.read()).value);
  ac.abort();
  await mock.waitFor(() => mock.requestsFor("dc-s")[0]?.endedAt, 5000);
  assert.equal(mock.requestsFor("dc-s")[0].closedEarly, true);
});

test("client disconnect while the panel works aborts the panel request (noticed at the next keep-alive) and skips the summary", async () => {
  mock.set("dc2-p", { delayMs: 5000 });
  const ac = new AbortController();
  const r = await postChat(w.url, { model: "disconnect2", stream: true, messages: user("q") }, {}, ac.signal);
  const reader = r.body.getReader();
  await reader.read(); // the role chunk
  await mock.waitFor(() => mock.requestsFor("dc2-p").length === 1);
  ac.abort();
  await mock.waitFor(() => mock.requestsFor("dc2-p")[0].endedAt, 3000);
  assert.equal(mock.requestsFor("dc2-p")[0].closedEarly, true);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(mock.requestsFor("dc2-s").length, 0);
});

test("request_timeout_ms is a hard ceiling: 504 / request_timeout event, not a hang", async () => {
  mock.set("cl-s", { fault: "hang" });
  const t0 = Date.now();
  const { nonStream, events } = await both("ceiling");
  assert.ok(Date.now() - t0 < 4000, `${Date.now() - t0} ms`);
  assert.equal(nonStream.status, 504);
  assert.equal(nonStream.body.error.code, "request_timeout");
  assert.equal(events.at(-2).error.code, "request_timeout");
  assert.equal(events.at(-1), "[DONE]");
});

test("the role chunk leaves at once and keep-alive comments flow while the panel works", async () => {
  mock.set("ka-p", { delayMs: 1000 });
  const t0 = Date.now();
  const r = await postChat(w.url, { model: "keepalive", stream: true, messages: user("q") });
  const reader = r.body.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  assert.ok(Date.now() - t0 < 500, "first byte before the panel finished");
  assert.match(first, /"role":"assistant"/);
  let rest = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    rest += new TextDecoder().decode(value);
  }
  const { comments, events } = parseSse(first + rest);
  assert.ok(comments.filter((c) => c === ": keep-alive").length >= 3, comments.join("|"));
  assert.equal(events.at(-1), "[DONE]");
});

test("progress events are opt-in (body or header), carry each panel answer, and never touch the answer text", async () => {
  mock.set("pg-1", { text: "PANEL-ONE-TEXT" });
  mock.set("pg-2", { status: 400 });
  mock.set("pg-s", { text: "final answer" });
  const plain = parseSse(await (await postChat(w.url, { model: "progress", stream: true, messages: user("q") })).text());
  assert.ok(!plain.events.some((e) => e.n1_progress));

  for (const [body, headers] of [
    [{ n1: { progress: true } }, {}],
    [{}, { "x-n1-progress": "1" }],
  ]) {
    const r = await postChat(w.url, { model: "progress", stream: true, messages: user("q"), ...body }, headers);
    const { events } = parseSse(await r.text());
    const progress = events.filter((e) => e.n1_progress).map((e) => e.n1_progress);
    // pg-1's text also streams in as panel_delta events, before its panel_member event.
    const deltas = progress.filter((p) => p.type === "panel_delta");
    assert.equal(deltas.map((d) => d.content).join(""), "PANEL-ONE-TEXT");
    assert.ok(progress.indexOf(deltas.at(-1)) < progress.findIndex((p) => p.type === "panel_member" && p.model === "pg-1"));
    assert.deepEqual(progress.filter((p) => p.type !== "panel_delta").map((p) => p.type).sort(), ["panel_done", "panel_member", "panel_member", "panel_start", "summary_start"]);
    const one = progress.find((p) => p.model === "pg-1" && p.type === "panel_member");
    assert.equal(one.content, "PANEL-ONE-TEXT");
    assert.equal(one.status, "ok");
    assert.equal(progress.find((p) => p.model === "pg-2").status, "error");
    assert.equal(streamText(events), "final answer");
  }
  // Through the openai client the progress chunks are harmless.
  const stream = await client.chat.completions.create({ model: "progress", stream: true, messages: user("q"), n1: { progress: true } });
  let text = "";
  for await (const c of stream) text += c.choices[0]?.delta?.content ?? "";
  assert.equal(text, "final answer");
  // The n1 field never reaches an upstream.
  assert.ok(mock.requests.every((q) => q.body.n1 === undefined));
});

// A seeded PRNG, so a failing chaos run can be replayed.
function rng(seed) {
  return () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
}

test("chaos: random faults on every call; each request ends well-formed within its deadline, and the counts add up", async () => {
  const seed = Number(process.env.CHAOS_SEED ?? Date.now() % 100000);
  const rand = rng(seed);
  const panel = ["c-1", "c-2", "c-3"];
  const faults = [
    {},
    {},
    { status: 500 },
    { status: 429, headers: { "retry-after": "0" } },
    { status: 400 },
    { fault: "malformed-json" },
    { delayMs: 2500 },
    { fault: "cut" },
    { fault: "no-done" },
    { fault: "garbage" },
    { fault: "error-event" },
    { fault: "hang" },
  ];
  const seq = () => Array.from({ length: 60 }, () => ({ ...faults[Math.floor(rand() * faults.length)], text: "chaos text" }));
  const m = (name) => mockModel(mock, name, { timeout_ms: 800, max_retries: 1 });
  const cfg = { ensembles: { chaos: { panel: panel.map(m), summary: [m("c-s1"), m("c-s2")], request_timeout_ms: 3000 } } };
  const cw = await startWorker({ config: cfg });
  try {
    for (const name of [...panel, "c-s1", "c-s2"]) mock.set(name, seq());
    const N = 40;
    const outcomes = { ok: 0, error: 0 };
    const run = async (i) => {
      const stream = i % 2 === 1;
      const t0 = Date.now();
      const r = await postChat(cw.url, { model: "chaos", stream, messages: user(`chaos ${i}`) });
      const text = await r.text();
      const elapsed = Date.now() - t0;
      assert.ok(elapsed < 3000 + 1500, `request ${i} took ${elapsed} ms (seed ${seed})`);
      if (!stream) {
        const body = JSON.parse(text);
        if (r.status === 200) {
          outcomes.ok++;
          assert.equal(typeof body.choices[0].message.content, "string");
          const failedPanel = body.n1.panel.filter((p) => p.status !== "ok").length;
          assert.equal(body.n1.panel_ok + failedPanel, body.n1.panel_total);
          assert.equal(body.n1.panel_total, 3);
        } else {
          outcomes.error++;
          assert.ok([502, 504].includes(r.status), `status ${r.status} (seed ${seed})`);
          assert.equal(typeof body.error.message, "string");
          assert.equal(r.headers.get("content-type"), "application/json");
        }
      } else {
        assert.equal(r.status, 200);
        const { events } = parseSse(text);
        assert.equal(events.at(-1), "[DONE]", `stream ${i} ended without [DONE] (seed ${seed})`);
        const err = events.find((e) => e !== "[DONE]" && e.error);
        const fin = finishChunk(events);
        assert.ok(Boolean(err) !== Boolean(fin), `stream ${i}: exactly one of error / finish (seed ${seed})`);
        if (fin) {
          outcomes.ok++;
          const failedPanel = fin.n1.panel.filter((p) => p.status !== "ok").length;
          assert.equal(fin.n1.panel_ok + failedPanel, 3);
        } else {
          outcomes.error++;
          assert.equal(typeof err.error.message, "string");
        }
      }
    };
    const queue = Array.from({ length: N }, (_, i) => i);
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (queue.length) await run(queue.shift());
    }));
    assert.equal(outcomes.ok + outcomes.error, N);
    assert.ok(outcomes.ok > 0 && outcomes.error > 0, `seed ${seed}: ${JSON.stringify(outcomes)}`);
  } finally {
    await cw.close();
  }
});
