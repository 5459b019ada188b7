// Self-test for tests/helpers/mock-upstream.mjs.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { startMockUpstream } from "./helpers/mock-upstream.mjs";

let mock;
before(async () => {
  mock = await startMockUpstream();
});
after(() => mock.close());
beforeEach(() => mock.reset());

const post = (body, init = {}) =>
  fetch(`${mock.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", Authorization: "Bearer k" },
    body: JSON.stringify(body),
    ...init,
  });

// Incremental SSE reader: decodes across chunk boundaries, returns data payloads in order.
async function readSse(res) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const data = [];
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    buf += done ? decoder.decode() : decoder.decode(value, { stream: true });
    let m;
    while ((m = /\r?\n\r?\n/.exec(buf))) {
      const block = buf.slice(0, m.index);
      buf = buf.slice(m.index + m[0].length);
      const lines = block.split(/\r?\n/).filter((l) => l.startsWith("data:"));
      if (lines.length) data.push(lines.map((l) => l.slice(5).replace(/^ /, "")).join("\n"));
    }
    if (done) return data;
  }
}

const textOf = (events) =>
  events
    .filter((d) => d !== "[DONE]")
    .map((d) => JSON.parse(d).choices[0]?.delta?.content ?? "")
    .join("");

test("default non-stream answer and request record", async () => {
  const res = await post({ model: "m1", messages: [{ role: "user", content: "hi" }] });
  assert.equal(res.status, 200);
  const json = await res.json();
  assert.equal(json.object, "chat.completion");
  assert.equal(json.model, "m1");
  assert.equal(json.choices[0].message.content, "answer from m1");
  assert.equal(json.choices[0].finish_reason, "stop");
  assert.deepEqual(json.usage, { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 });

  await mock.waitFor((rs) => rs[0]?.endedAt);
  const [rec] = mock.requestsFor("m1");
  assert.equal(rec.path, "/v1/chat/completions");
  assert.equal(rec.headers.authorization, "Bearer k");
  assert.equal(rec.body.messages[0].content, "hi");
  assert.equal(rec.closedEarly, false);
});

test("sequence: 500 then 200, last item repeats", async () => {
  mock.set("seq", [{ status: 500, headers: { "retry-after": "1" } }, { text: "ok" }]);
  const r1 = await post({ model: "seq" });
  assert.equal(r1.status, 500);
  assert.equal(r1.headers.get("retry-after"), "1");
  assert.equal((await r1.json()).error.message, "mock error 500");
  for (let i = 0; i < 2; i++) {
    const r = await post({ model: "seq" });
    assert.equal(r.status, 200);
    assert.equal((await r.json()).choices[0].message.content, "ok");
  }
  assert.equal(mock.requestsFor("seq").length, 3);
});

test("stream: CRLF framing, fragmented writes, comments, usage", async () => {
  const text = "héllo wörld 🌍 ✓ 日本語 done";
  mock.set("s", { text, lineEnding: "\r\n", fragment: true, comments: true });
  const res = await post({ model: "s", stream: true, stream_options: { include_usage: true } });
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  const events = await readSse(res);
  assert.equal(events.at(-1), "[DONE]");
  assert.equal(textOf(events), text);
  const parsed = events.slice(0, -1).map((d) => JSON.parse(d));
  assert.deepEqual(parsed[0].choices[0].delta, { role: "assistant", content: "" });
  assert.equal(parsed.at(-2).choices[0].finish_reason, "stop");
  assert.deepEqual(parsed.at(-1).choices, []);
  assert.equal(parsed.at(-1).usage.total_tokens, 15);
});

test("stream: coalesced single write, no usage unless asked", async () => {
  mock.set("c", { coalesce: true, chunks: 3 });
  const events = await readSse(await post({ model: "c", stream: true }));
  assert.equal(textOf(events), "answer from c");
  assert.equal(events.length, 1 + 3 + 1 + 1); // role, content, finish, [DONE]
});

test("cut: body read errors or stream is truncated", async () => {
  mock.set("cut", { fault: "cut" });
  const res = await post({ model: "cut", stream: true });
  let events = null;
  try {
    events = await readSse(res);
  } catch {
    // expected: connection dropped mid-body
  }
  if (events) assert.ok(!events.includes("[DONE]"), "cut stream must not end with [DONE]");
  await mock.waitFor((rs) => rs[0]?.endedAt);
  assert.equal(mock.requests[0].closedEarly, false, "a deliberate cut is not a client abort");
});

test("stream faults produce the advertised shapes", async () => {
  mock.set("nd", { fault: "no-done" });
  mock.set("ee", { fault: "error-event" });
  mock.set("gb", { fault: "garbage" });
  mock.set("mj", { fault: "malformed-json" });

  const nd = await readSse(await post({ model: "nd", stream: true }));
  assert.equal(textOf(nd), "answer from nd");
  assert.ok(!nd.includes("[DONE]"));

  const ee = await readSse(await post({ model: "ee", stream: true }));
  assert.equal(JSON.parse(ee.at(-1)).error.message, "mock stream error");

  const gb = await (await post({ model: "gb", stream: true })).text();
  assert.match(gb, /garbage/);
  assert.match(gb, /data: ###/);

  assert.deepEqual(await readSse(await post({ model: "mj", stream: true })), ["{not json"]);
  await assert.rejects((await post({ model: "mj" })).json());
});

test("aborting a hung request sets closedEarly", async () => {
  mock.set("h", { fault: "hang" });
  const ac = new AbortController();
  const p = post({ model: "h" }, { signal: ac.signal });
  await mock.waitFor((rs) => rs.some((r) => r.model === "h"));
  ac.abort();
  await assert.rejects(p, { name: "AbortError" });
  const rec = await mock.waitFor((rs) => rs.find((r) => r.model === "h" && r.closedEarly));
  assert.ok(rec.endedAt >= rec.startedAt);
});

test("close() resolves with a hung request open", async () => {
  const m2 = await startMockUpstream();
  m2.set("h", { fault: "hang" });
  const p = fetch(`${m2.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: "h" }) });
  await m2.waitFor((rs) => rs.length === 1 && rs[0].model === "h");
  await m2.close();
  await assert.rejects(p);
  assert.equal(m2.requests[0].closedEarly, false);
  await m2.close(); // idempotent
});
