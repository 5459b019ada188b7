// The worker's entry: the Rust worker (built into build/), wrapped so that a
// fault that escapes it still ends in an OpenAI-shaped error, never an HTML
// page or a hung request. A Rust panic traps the Wasm instance: its pending
// promises would never settle, so the Rust panic hook calls __n1_on_panic,
// which fails every request of this isolate still in flight (a JSON 500, or an
// error event + [DONE] on a stream). workers-rs reinitializes the instance on
// the next request.
import { WorkerEntrypoint } from "cloudflare:workers";
import N1 from "../build/index.js";

const ERROR = {
  message: "Internal error: the worker failed while handling this request.",
  type: "server_error",
  param: null,
  code: "internal_error",
};
const JSON_500 = JSON.stringify({ error: ERROR });
const STREAM_END = new TextEncoder().encode(`data: ${JSON.stringify({ error: ERROR })}\n\ndata: [DONE]\n\n`);

const inFlight = new Set();
let panics = 0;
globalThis.__n1_on_panic = () => {
  panics++;
  for (const fail of inFlight) fail();
  inFlight.clear();
};

function internalError() {
  return new Response(JSON_500, { status: 500, headers: { "content-type": "application/json" } });
}

export default class extends WorkerEntrypoint {
  async fetch(request) {
    const epoch = panics;
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
    if (!(resp instanceof Response)) return internalError();
    if (!resp.headers.get("content-type")?.startsWith("text/event-stream") || !resp.body) return resp;
    // The stream's writer may already have died with the instance.
    if (panics !== epoch) return new Response(STREAM_END, resp);

    // An identity TransformStream (chunks pass through natively) that can end
    // the stream with an error event should the instance die mid-stream.
    let controller;
    const guard = new TransformStream({ start: (c) => (controller = c) });
    const end = () => {
      try {
        controller.enqueue(STREAM_END);
        controller.terminate();
      } catch {}
    };
    inFlight.add(end);
    const done = resp.body.pipeTo(guard.writable).catch(() => {}).finally(() => inFlight.delete(end));
    this.ctx.waitUntil(done);
    return new Response(guard.readable, resp);
  }
}
