// Raw HTTP helpers for the Anthropic Messages API (tests/messages.test.mjs).
import assert from "node:assert/strict";

export function post(url, body, headers = {}, signal = undefined, path = "/v1/messages") {
  return fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "anthropic-version": "2023-06-01", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal,
  });
}

/** An SSE body as Anthropic's events: [{event, data}] (every event must name its type twice), and comments. */
export function events(text) {
  const out = [];
  const comments = [];
  for (const block of text.split("\n\n")) {
    if (!block) continue;
    const lines = block.split("\n");
    comments.push(...lines.filter((l) => l.startsWith(":")));
    const ev = lines.find((l) => l.startsWith("event: "))?.slice(7);
    const data = lines.find((l) => l.startsWith("data: "))?.slice(6);
    if (data === undefined) continue;
    const parsed = JSON.parse(data);
    assert.equal(parsed.type, ev, `event and data type agree: ${block}`);
    out.push({ event: ev, data: parsed });
  }
  return { events: out, comments };
}

export const streamText = (evs) => evs.filter((e) => e.data.delta?.type === "text_delta").map((e) => e.data.delta.text).join("");
export const delta = (evs) => evs.find((e) => e.event === "message_delta")?.data;

/** Non-streaming and streaming, raw. */
export async function bothModes(url, model, extra = {}) {
  const r1 = await post(url, { model, max_tokens: 1024, messages: [{ role: "user", content: "q" }], ...extra });
  const nonStream = { status: r1.status, headers: r1.headers, body: await r1.json() };
  const r2 = await post(url, { model, max_tokens: 1024, messages: [{ role: "user", content: "q" }], stream: true, ...extra });
  assert.equal(r2.status, 200);
  assert.match(r2.headers.get("content-type"), /^text\/event-stream/);
  return { nonStream, ...events(await r2.text()) };
}
