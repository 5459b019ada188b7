// The worker's entry: the Rust worker (built into build/), wrapped so that a
// fault that escapes it still ends in an OpenAI-shaped error, never an HTML
// page or a hung request. A Rust panic traps the Wasm instance: its pending
// promises would never settle, so the Rust panic hook calls __n1_on_panic,
// which fails every request of this isolate still in flight (a JSON 500, or an
// error event + [DONE] on a stream). workers-rs reinitializes the instance on
// the next request.
import { WorkerEntrypoint } from "cloudflare:workers";
import N1 from "../build/index.js";
// The budget Durable Object (src/edge/budget.rs), bound as N1_BUDGET in wrangler.toml.
export { N1Budget } from "../build/index.js";

const ERROR = {
  message: "Internal error: the worker failed while handling this request.",
  type: "server_error",
  param: null,
  code: "internal_error",
};
const JSON_500 = JSON.stringify({ error: ERROR });
// On Anthropic's paths (/v1/messages…) errors take Anthropic's shape (src/core/error.rs).
const ANTHROPIC_500 = JSON.stringify({
  type: "error",
  error: { type: "api_error", message: `internal_error: ${ERROR.message}`, details: { error_code: "internal_error" } },
});
const isMessagesPath = (url) => /^\/(v1\/)?messages(\/|$)/.test(new URL(url).pathname);
const STREAM_END = new TextEncoder().encode(`data: ${JSON.stringify({ error: ERROR })}\n\ndata: [DONE]\n\n`);

const inFlight = new Set();
globalThis.__n1_on_panic = () => {
  for (const fail of inFlight) fail();
  inFlight.clear();
};

// The Rust side takes its reply stream from here (src/edge/body.rs), so that this
// wrapper holds the same writer and can end the stream with an error event
// should the instance die mid-stream: one stream, no second one to pipe through.
// `onCrash` is that event in the stream's dialect (OpenAI's when absent).
globalThis.__n1_reply_stream = (onCrash) => {
  const { readable, writable } = new TransformStream();
  const writer = writable.getWriter();
  const end = () => {
    writer.write(onCrash ?? STREAM_END).then(() => writer.close()).catch(() => {});
  };
  inFlight.add(end);
  writer.closed.catch(() => {}).finally(() => inFlight.delete(end));
  return [readable, writer];
};

function internalError(url) {
  const body = isMessagesPath(url) ? ANTHROPIC_500 : JSON_500;
  return new Response(body, { status: 500, headers: { "content-type": "application/json" } });
}

export default class extends WorkerEntrypoint {
  async fetch(request) {
    let fail;
    const crashed = new Promise((resolve) => (fail = resolve));
    inFlight.add(fail);
    let resp;
    try {
      resp = await Promise.race([new N1(this.ctx, this.env).fetch(request), crashed]);
    } catch (e) {
      // The error's name only: messages could quote request data.
      console.error(`n1: unhandled ${e?.name ?? "error"} in fetch`);
    } finally {
      inFlight.delete(fail);
    }
    // A stream came from __n1_reply_stream, which ends it should the instance die.
    return resp instanceof Response ? resp : internalError(request.url);
  }
}
