// The Anthropic Messages API's resilience (POST /v1/messages): every fault
// tests/faults.test.mjs checks for chat completions, in this dialect's shape
// (the official @anthropic-ai/sdk's error classes, or an `error` event when
// streaming), through real HTTP: the worker in workerd and the mock upstream.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { post, events, streamText, delta, bothModes, messagesWorld } from "./helpers/messages.mjs";

const both = (model, extra) => bothModes(w.url, model, extra);

let mock, w, client, close;
const user = (content) => [{ role: "user", content }];

before(async () => ({ mock, w, client, close } = await messagesWorld()));
after(() => close?.());
beforeEach(() => mock.reset());

test("a panel model slower than its timeout: a degraded answer in both modes", async () => {
  mock.set("t-slow", { delayMs: 3000 });
  const t0 = Date.now();
  const { nonStream, events: evs } = await both("timeout");
  assert.ok(Date.now() - t0 < 2500, "neither mode waited for the slow model");
  assert.equal(nonStream.status, 200);
  assert.equal(nonStream.body.content[0].text, "answer from t-s");
  assert.deepEqual(nonStream.body.n1.panel.map((p) => p.status), ["timeout", "ok"]);
  assert.equal(nonStream.headers.get("x-n1-panel"), "1/2");
  assert.equal(nonStream.headers.get("x-n1-degraded"), "true");
  assert.equal(streamText(evs), "answer from t-s");
  assert.equal(delta(evs).n1.panel[0].status, "timeout");
  assert.equal(delta(evs).n1.degraded, true);
  assert.equal(evs.at(-1).event, "message_stop");
  await mock.waitFor(() => mock.requestsFor("t-slow").every((r) => r.endedAt));
  assert.ok(mock.requestsFor("t-slow").every((r) => r.closedEarly), "the slow fetch was aborted");
});

test("streams left open after their last event ([DONE], message_stop): complete answers in both modes, no error event", async () => {
  for (const model of ["ho-p", "ho-claude", "ho-s"]) mock.set(model, { holdOpen: true, text: `answer from ${model}`, chunks: 3 });
  const { nonStream, events: evs } = await both("heldopen");
  assert.equal(nonStream.status, 200);
  assert.equal(nonStream.body.content[0].text, "answer from ho-s");
  assert.deepEqual(nonStream.body.n1.panel.map((p) => p.status), ["ok", "ok"]);
  assert.equal(nonStream.body.stop_reason, "end_turn");
  assert.equal(streamText(evs), "answer from ho-s");
  assert.ok(!evs.some((e) => e.event === "error"), JSON.stringify(evs.filter((e) => e.event === "error")));
  assert.deepEqual(delta(evs).n1.panel.map((p) => p.status), ["ok", "ok"]);
  assert.equal(delta(evs).delta.stop_reason, "end_turn");
  assert.equal(evs.at(-1).event, "message_stop");
});

test("all panel models failing: 502 api_error / an error event naming each, and the stream ends there", async () => {
  mock.set("af-1", { fault: "hang" });
  mock.set("af-2", { status: 503 });
  const { nonStream, events: evs } = await both("allfail");
  assert.equal(nonStream.status, 502);
  assert.equal(nonStream.body.error.type, "api_error");
  assert.match(nonStream.body.error.message, /^panel_failed: /);
  assert.match(nonStream.body.error.message, /af-1 \(timeout\)/);
  assert.match(nonStream.body.error.message, /af-2 \(HTTP 503\)/);
  assert.deepEqual(evs.map((e) => e.event).filter((k) => k !== "ping"), ["message_start", "error"]);
  assert.equal(evs.at(-1).data.error.type, "api_error");
  assert.equal(mock.requestsFor("af-s").length, 0);
});

for (const [fault, what] of [
  ["cut", "cut mid-answer"],
  ["no-done", "ending without its end"],
  ["garbage", "with garbage bytes"],
  ["error-event", "with an error event"],
]) {
  test(`a summary stream ${what} after some content: the content so far, then an error event, and no message_stop`, async () => {
    mock.set("st-s", { text: "one two three four five six seven eight", chunks: 8, fault });
    const r = await post(w.url, { model: "stream", max_tokens: 100, stream: true, messages: user("q") });
    const { events: evs } = events(await r.text());
    assert.ok(streamText(evs).length > 0, "partial content was relayed");
    const last = evs.at(-1);
    assert.equal(last.event, "error");
    assert.equal(last.data.error.type, "api_error");
    assert.equal(last.data.error.details.error_code, "stream_error");
    assert.ok(!evs.some((e) => e.event === "message_delta" || e.event === "message_stop"), "the answer is not presented as complete");
    // The SDK raises it.
    mock.set("st-s", { text: "one two three four five six seven eight", chunks: 8, fault });
    await assert.rejects(client.messages.stream({ model: "stream", max_tokens: 100, messages: user("q") }).finalMessage(), (e) => e instanceof Anthropic.APIError && e.type === "api_error");
  });
}

test("a summary stream that stalls ends with an error event after the model's timeout, and is aborted", async () => {
  mock.set("sl-s", { text: "first second", chunks: 2, chunkDelayMs: 5000 });
  const t0 = Date.now();
  const { events: evs } = events(await (await post(w.url, { model: "stall", max_tokens: 100, stream: true, messages: user("q") })).text());
  assert.ok(Date.now() - t0 < 3000, `${Date.now() - t0} ms`);
  assert.equal(evs.at(-1).event, "error");
  assert.equal(evs.at(-1).data.error.details.error_code, "summary_failed");
  assert.match(evs.at(-1).data.error.message, /sent nothing for 400 ms/);
  await mock.waitFor(() => mock.requestsFor("sl-s")[0].endedAt);
  assert.equal(mock.requestsFor("sl-s")[0].closedEarly, true);
});

test("quorum and panel_timeout_ms: the synthesis starts without the stragglers, which are aborted", async () => {
  mock.set("q-3", { delayMs: 4000 });
  mock.set("pt-slow", { delayMs: 4000 });
  const t0 = Date.now();
  const q = await both("quorum");
  const pt = await both("paneltimeout");
  assert.ok(Date.now() - t0 < 4000, `${Date.now() - t0} ms`);
  assert.equal(q.nonStream.body.n1.panel_end, "quorum");
  assert.equal(q.nonStream.body.n1.panel[2].status, "cancelled");
  assert.equal(delta(q.events).n1.panel_end, "quorum");
  assert.equal(pt.nonStream.body.n1.panel[1].status, "timeout");
  assert.equal(delta(pt.events).n1.panel_end, "timeout");
  await mock.waitFor(() => [...mock.requestsFor("q-3"), ...mock.requestsFor("pt-slow")].every((r) => r.endedAt));
  assert.ok([...mock.requestsFor("q-3"), ...mock.requestsFor("pt-slow")].every((r) => r.closedEarly));
});

test("min_panel: fewer answers than required is a 502 / an error event", async () => {
  mock.set("mp-2", { status: 400 });
  const { nonStream, events: evs } = await both("minpanel");
  assert.equal(nonStream.status, 502);
  assert.match(nonStream.body.error.message, /\(1, 2 needed\)/);
  assert.equal(evs.at(-1).data.error.details.error_code, "panel_failed");
});

test("on_summary_failure best_panel_answer: the first panel answer, labelled, in both modes", async () => {
  mock.set("bp-1", { text: "PANEL ONE" });
  mock.set("bp-s", { status: 500 });
  const { nonStream, events: evs } = await both("best");
  assert.equal(nonStream.status, 200);
  assert.equal(nonStream.body.content[0].text, "PANEL ONE");
  assert.equal(nonStream.headers.get("x-n1-fallback"), "best_panel_answer");
  assert.equal(nonStream.body.n1.summary.status, "best_panel_answer");
  assert.equal(streamText(evs), "PANEL ONE");
  assert.equal(delta(evs).n1.summary.status, "best_panel_answer");
  assert.equal(evs.at(-1).event, "message_stop");
});

test("a summary model failing before its first token: the next one answers, in both modes", async () => {
  mock.set("fb-s1", { status: 500 });
  mock.set("fb-s2", { text: "fallback synthesis" });
  const { nonStream, events: evs } = await both("fallback");
  assert.equal(nonStream.body.content[0].text, "fallback synthesis");
  assert.equal(nonStream.body.n1.summary.model, "fb-s2");
  assert.equal(nonStream.body.n1.summary.failed[0].model, "fb-s1");
  assert.equal(streamText(evs), "fallback synthesis");
  assert.equal(delta(evs).n1.summary.model, "fb-s2");
  // A stream that breaks before its first token falls back too.
  mock.set("fb-s1", { fault: "malformed-json" });
  const final = await client.messages.stream({ model: "fallback", max_tokens: 100, messages: user("q") }).finalMessage();
  assert.equal(final.content[0].text, "fallback synthesis");
});

test("request_timeout_ms is a hard ceiling: 504 / an error event, not a hang", async () => {
  mock.set("cl-s", { fault: "hang" });
  const t0 = Date.now();
  const { nonStream, events: evs } = await both("ceiling");
  assert.ok(Date.now() - t0 < 4000, `${Date.now() - t0} ms`);
  assert.equal(nonStream.status, 504);
  assert.equal(nonStream.body.error.type, "api_error");
  assert.equal(nonStream.body.error.details.error_code, "request_timeout");
  assert.match(nonStream.body.error.message, /^request_timeout: /);
  assert.equal(evs.at(-1).event, "error");
  assert.equal(evs.at(-1).data.error.details.error_code, "request_timeout");
  await assert.rejects(client.messages.create({ model: "ceiling", max_tokens: 5, messages: user("q") }), (e) => e instanceof Anthropic.GatewayTimeoutError && e.type === "api_error");
});

test("client disconnect mid-stream aborts the summary request", async () => {
  mock.set("dc-s", { text: "x".repeat(400), chunks: 100, chunkDelayMs: 50 });
  const ac = new AbortController();
  const r = await post(w.url, { model: "disconnect", max_tokens: 100, stream: true, messages: user("q") }, {}, ac.signal);
  const reader = r.body.getReader();
  let got = "";
  while (!got.includes('"text_delta","text":"x')) got += new TextDecoder().decode((await reader.read()).value);
  ac.abort();
  await mock.waitFor(() => mock.requestsFor("dc-s")[0]?.endedAt, 5000);
  assert.equal(mock.requestsFor("dc-s")[0].closedEarly, true);
});

test("client disconnect while the panel works aborts the panel request (noticed at the next ping) and skips the summary", async () => {
  mock.set("dc2-p", { delayMs: 5000 });
  const ac = new AbortController();
  const r = await post(w.url, { model: "disconnect2", max_tokens: 100, stream: true, messages: user("q") }, {}, ac.signal);
  const reader = r.body.getReader();
  await reader.read(); // message_start
  await mock.waitFor(() => mock.requestsFor("dc2-p").length === 1);
  ac.abort();
  await mock.waitFor(() => mock.requestsFor("dc2-p")[0].endedAt, 3000);
  assert.equal(mock.requestsFor("dc2-p")[0].closedEarly, true);
  await new Promise((res) => setTimeout(res, 200));
  assert.equal(mock.requestsFor("dc2-s").length, 0);
});
