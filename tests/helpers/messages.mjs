// Raw HTTP helpers and the test ensembles for the Anthropic Messages API (tests/messages*.test.mjs).
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { startMockUpstream } from "./mock-upstream.mjs";
import { mockModel, startWorker } from "./worker.mjs";

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

/** The ensembles tests/messages.test.mjs and tests/messages-faults.test.mjs use, on `mock`. */
export function messagesConfig(mock) {
  const m = (name, extra) => mockModel(mock, name, extra);
  const e = (panel, summary, policy = {}) => ({ panel: panel.map((p) => (typeof p === "string" ? m(p) : p)), summary, ...policy });
  return {
    default_ensemble: "council",
    ensembles: {
      council: e(["c-a", "c-b"], m("c-s")),
      private: e(["pv-a"], m("pv-s")),
      tools: e(["tl-p"], m("tl-s")),
      mixed: e(["mx-o", { provider: "anthropic", endpoint: `${mock.url}/v1`, model: "mx-a" }], m("mx-s")),
      timeout: e([m("t-slow", { timeout_ms: 300, max_retries: 0 }), "t-ok"], m("t-s")),
      allfail: e([m("af-1", { timeout_ms: 300 }), m("af-2", { max_retries: 0 })], m("af-s")),
      stream: e(["st-p"], m("st-s")),
      fallback: e(["fb-p"], [m("fb-s1", { max_retries: 0 }), m("fb-s2")]),
      ceiling: e(["cl-p"], m("cl-s"), { request_timeout_ms: 1000 }),
      disconnect: e(["dc-p"], m("dc-s")),
      disconnect2: e(["dc2-p"], m("dc2-s"), { keep_alive_ms: 300 }),
      keepalive: e(["ka-p"], m("ka-s"), { keep_alive_ms: 200 }),
      progress: e(["pg-1", "pg-2"], m("pg-s")),
      stall: e(["sl-p"], m("sl-s", { timeout_ms: 400 })),
      quorum: e(["q-1", "q-2", "q-3"], m("q-s"), { quorum: 2 }),
      paneltimeout: e(["pt-fast", "pt-slow"], m("pt-s"), { panel_timeout_ms: 500 }),
      minpanel: e(["mp-1", m("mp-2", { max_retries: 0 })], m("mp-s"), { min_panel: 2 }),
      best: e(["bp-1", "bp-2"], m("bp-s", { max_retries: 0 }), { on_summary_failure: "best_panel_answer" }),
      // Streams that end ([DONE], message_stop) and keep the connection open.
      heldopen: e(
        [m("ho-p", { timeout_ms: 1500, max_retries: 0 }), { provider: "anthropic", endpoint: `${mock.url}/v1`, model: "ho-claude", timeout_ms: 1500, max_retries: 0 }],
        m("ho-s", { timeout_ms: 1500, max_retries: 0 }),
      ),
    },
  };
}

/** The mock upstream, the worker on `messagesConfig` and an SDK client for it; `close()` stops both. */
export async function messagesWorld() {
  const mock = await startMockUpstream();
  const w = await startWorker({ config: messagesConfig(mock) });
  const client = new Anthropic({ apiKey: "unused", baseURL: w.url, maxRetries: 0 });
  const close = async () => {
    await w.close();
    await mock.close();
  };
  return { mock, w, client, close };
}
