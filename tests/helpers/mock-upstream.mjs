// Mock OpenAI-compatible chat-completions upstream for integration tests.
// Started in-process; behaviour is configured per model, see startMockUpstream().
import http from "node:http";

const DEFAULT_USAGE = { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 };
const GARBAGE = Buffer.concat([Buffer.from([0x00, 0xff]), Buffer.from(" garbage")]);

const STREAM_ERROR = JSON.stringify({ error: { message: "mock stream error", type: "server_error" } });

const errorBody = (message, type = "server_error") => ({ error: { message, type, code: null } });

// Split text into code-point-safe pieces: `chunks` may be a count, an explicit array, or unset (~4 chars each).
function splitText(text, chunks) {
  if (Array.isArray(chunks)) return chunks.map(String);
  const cps = Array.from(text);
  if (cps.length === 0) return [];
  const size = typeof chunks === "number" && chunks > 0 ? Math.ceil(cps.length / chunks) : 4;
  const out = [];
  for (let i = 0; i < cps.length; i += size) out.push(cps.slice(i, i + size).join(""));
  return out;
}

export async function startMockUpstream() {
  const behaviours = new Map();
  const counts = new Map(); // per-model request index, drives behaviour sequences
  const requests = []; // same array for the mock's lifetime, so callers may keep a reference
  const sockets = new Set();
  let seq = 0;
  let closing = false;
  let closePromise = null;

  function pick(model) {
    const n = counts.get(model) ?? 0;
    counts.set(model, n + 1);
    const b = behaviours.get(model);
    if (Array.isArray(b)) return b.length ? b[Math.min(n, b.length - 1)] ?? {} : {};
    return b ?? {};
  }

  async function handle(req, res) {
    const rec = {
      model: null,
      path: req.url,
      headers: { ...req.headers },
      body: null,
      raw: "",
      startedAt: Date.now(),
      endedAt: null,
      closedEarly: false,
    };
    requests.push(rec); // recorded on arrival, so aborted / unparsable requests show up too

    // Per-request state; timers are cleared on close so a pending delay can't keep the process alive.
    const ctx = { closed: false, selfClosed: false, timers: new Set() };
    let markClosed;
    ctx.closedP = new Promise((r) => (markClosed = r));
    // 'close' fires both after a normal finish and when the socket dies first; only the
    // latter, caused by the client (not a deliberate cut or mock.close()), counts as closedEarly.
    res.on("close", () => {
      ctx.closed = true;
      rec.endedAt = Date.now();
      rec.closedEarly = !res.writableFinished && !ctx.selfClosed && !closing;
      for (const t of ctx.timers) clearTimeout(t);
      markClosed();
    });

    const chunks = [];
    try {
      for await (const c of req) chunks.push(c);
    } catch {
      return; // client aborted mid-body
    }
    if (ctx.closed) return;
    rec.raw = Buffer.concat(chunks).toString("utf8");
    try {
      rec.body = JSON.parse(rec.raw);
    } catch {
      rec.body = null;
    }
    if (rec.body && typeof rec.body.model === "string") rec.model = rec.body.model;

    const path = req.url.split("?")[0];
    const anthropic = path.endsWith("/messages");
    if (req.method !== "POST" || !(path.endsWith("/chat/completions") || anthropic)) {
      return sendJson(res, 404, errorBody(`mock: no route ${req.method} ${path}`, "invalid_request_error"));
    }
    if (!rec.body || typeof rec.body !== "object") {
      return sendJson(res, 400, errorBody("mock: request body is not JSON", "invalid_request_error"));
    }

    const bh = pick(rec.model);
    const n = ++seq;
    if (bh.fault === "hang") return; // leave the socket open until the client or close() ends it

    await pause(ctx, bh.delayMs);
    if (ctx.closed) return;

    const headers = bh.headers ?? {};
    if (bh.status != null && bh.status !== 200) {
      return sendJson(res, bh.status, bh.errorBody ?? errorBody(`mock error ${bh.status}`), headers);
    }
    const opts = {
      model: rec.model,
      n,
      created: Math.floor(Date.now() / 1000),
      text: bh.text === undefined ? `answer from ${rec.model}` : bh.text,
      usage: "usage" in bh ? bh.usage : DEFAULT_USAGE,
      finishReason: bh.finishReason ?? (bh.toolCalls ? "tool_calls" : "stop"),
    };
    if (anthropic) return anthropicReply(res, ctx, bh, opts, headers, rec.body.stream === true);
    if (rec.body.stream === true) {
      return stream(res, ctx, bh, opts, headers, rec.body.stream_options?.include_usage === true);
    }
    return nonStream(res, ctx, bh, opts, headers);
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      // A bug in the mock should surface as a broken response, not an unhandled rejection.
      console.error("mock-upstream handler error:", err);
      res.destroy();
    });
  });
  let connections = 0;
  server.on("connection", (s) => {
    connections++;
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address();

  return {
    url: `http://127.0.0.1:${port}`,
    get requests() {
      return requests;
    },
    /** TCP connections accepted so far (a client that reuses its connections opens few). */
    get connections() {
      return connections;
    },
    set(model, behaviour) {
      behaviours.set(model, behaviour);
      counts.delete(model); // a new sequence starts from its first item
    },
    reset() {
      behaviours.clear();
      counts.clear();
      requests.length = 0;
    },
    requestsFor(model) {
      return requests.filter((r) => r.model === model);
    },
    waitFor(pred, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      return new Promise((resolve, reject) => {
        const tick = () => {
          let v;
          try {
            v = pred(requests);
          } catch (err) {
            return reject(err);
          }
          if (v) return resolve(v);
          if (Date.now() >= deadline) {
            return reject(new Error(`mock.waitFor timed out after ${timeoutMs} ms (${requests.length} requests seen)`));
          }
          setTimeout(tick, 10);
        };
        tick();
      });
    },
    close() {
      if (!closePromise) {
        closing = true;
        closePromise = new Promise((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        for (const s of sockets) s.destroy();
      }
      return closePromise;
    },
  };
}

function pause(ctx, ms) {
  if (!(ms > 0) || ctx.closed) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      ctx.timers.delete(t);
      resolve();
    }, ms);
    ctx.timers.add(t);
    ctx.closedP.then(resolve);
  });
}

// Resolves once the bytes reached the socket (or the response closed), so a following cut can't drop them.
function write(res, ctx, buf) {
  if (ctx.closed) return Promise.resolve();
  return Promise.race([new Promise((r) => res.write(buf, () => r())), ctx.closedP]);
}

function sendJson(res, status, body, headers = {}) {
  const text = typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(text);
}

async function nonStream(res, ctx, bh, o, headers) {
  if (bh.fault === "malformed-json") return sendJson(res, 200, '{"choices": [', headers);
  if (bh.fault === "binary") return sendJson(res, 200, GARBAGE, headers); // not even UTF-8
  const message = { role: "assistant", content: o.text };
  if (bh.reasoning) message[bh.reasoningField ?? "reasoning_content"] = bh.reasoning;
  if (bh.toolCalls) message.tool_calls = bh.toolCalls;
  const choices = bh.fault === "empty-choices" ? [] : [{ index: 0, message, finish_reason: o.finishReason }];
  const body = JSON.stringify({
    id: `mock-${o.n}`,
    object: "chat.completion",
    created: o.created,
    model: o.model,
    choices,
    usage: o.usage,
  });
  if (bh.fault !== "cut") return sendJson(res, 200, body, headers);
  // Non-stream cut: promise the full length, send half, then drop the connection.
  const buf = Buffer.from(body);
  res.writeHead(200, { "content-type": "application/json", "content-length": buf.length, ...headers });
  await write(res, ctx, buf.subarray(0, buf.length >> 1));
  ctx.selfClosed = true;
  res.socket?.destroy();
}

async function stream(res, ctx, bh, o, headers, includeUsage) {
  const le = bh.lineEnding ?? "\n";
  // nullError: some providers send `"error": null` on every chunk.
  const base = { id: `mock-${o.n}`, object: "chat.completion.chunk", created: o.created, model: o.model, ...(bh.nullError ? { error: null } : {}) };
  const chunk = (delta, finish = null) =>
    JSON.stringify({ ...base, choices: [{ index: 0, delta, finish_reason: finish }] });

  const role = chunk({ role: "assistant", content: "" });
  // reasoning: streamed first, under `reasoningField` (default reasoning_content).
  const thinking = bh.reasoning ? splitText(bh.reasoning, 2).map((p) => chunk({ [bh.reasoningField ?? "reasoning_content"]: p })) : [];
  const content = [...thinking, ...(o.text === null ? [] : splitText(String(o.text), bh.chunks)).map((p) => chunk({ content: p }))];
  if (bh.toolCalls) content.push(chunk({ tool_calls: bh.toolCalls.map((tc, i) => ({ index: i, ...tc })) }));
  const usage = JSON.stringify({ ...base, choices: [], usage: o.usage });

  // Event payloads (the part after "data: "); Buffers are written raw, without framing.
  let events;
  switch (bh.fault) {
    case "malformed-json":
      events = ["{not json"];
      break;
    case "empty-choices":
      events = [JSON.stringify({ ...base, choices: [] }), "[DONE]"];
      break;
    case "cut":
      events = [role, ...content.slice(0, Math.ceil(content.length / 2))];
      break;
    case "no-done":
      events = [role, ...content];
      break;
    case "garbage":
      events = [role, ...content.slice(0, 1), Buffer.concat([GARBAGE, Buffer.from(le + le)]), "###"];
      break;
    case "binary": // not UTF-8, inside an event
      events = [role, Buffer.concat([Buffer.from("data: "), GARBAGE, Buffer.from(le + le)]), "[DONE]"];
      break;
    case "error-event":
      events = [role, ...content.slice(0, 1), STREAM_ERROR];
      break;
    case "stall": // some content, then silence with the connection open
      events = [role, ...content.slice(0, 1)];
      break;
    default:
      events = [role, ...content, chunk({}, o.finishReason), ...(includeUsage ? [usage] : []), "[DONE]"];
  }
  const frames = events.map((e) => {
    const framed = Buffer.isBuffer(e) ? e : Buffer.from(`data: ${e}${le}${le}`);
    return bh.comments ? Buffer.concat([Buffer.from(`: ping${le}${le}`), framed]) : framed;
  });

  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", ...headers });
  if (bh.coalesce) {
    await write(res, ctx, Buffer.concat(frames));
  } else {
    for (let i = 0; i < frames.length && !ctx.closed; i++) {
      if (i > 0) await pause(ctx, bh.chunkDelayMs);
      if (bh.fragment) await writeFragmented(res, ctx, frames[i]);
      else await write(res, ctx, frames[i]);
    }
  }
  if (ctx.closed) return;
  // stall: some content, then silence; holdOpen: the whole stream, [DONE] included, then
  // silence. Either is left open until the client or close() ends it.
  if (bh.fault === "stall" || bh.holdOpen) return;
  if (bh.fault === "cut") {
    ctx.selfClosed = true;
    res.socket?.destroy();
  } else {
    res.end();
  }
}

// Anthropic's Messages API (POST …/messages), for the anthropic provider tests.
async function anthropicReply(res, ctx, bh, o, headers, streaming) {
  // bh.anthropicUsage: more of Anthropic's input counts (prompt-cache reads and writes), as sent.
  const usage = { input_tokens: o.usage?.prompt_tokens ?? 10, output_tokens: o.usage?.completion_tokens ?? 5, ...bh.anthropicUsage };
  const toolUse = (bh.toolCalls ?? []).map((tc) => ({ type: "tool_use", id: tc.id, name: tc.function.name, input: JSON.parse(tc.function.arguments) }));
  const stop = toolUse.length ? "tool_use" : "end_turn";
  if (!streaming) {
    const content = [...(o.text ? [{ type: "text", text: String(o.text) }] : []), ...toolUse];
    return sendJson(res, 200, JSON.stringify({ id: `msg-${o.n}`, type: "message", role: "assistant", model: o.model, content, stop_reason: stop, usage }), headers);
  }
  const ev = (type, data) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  const frames = [ev("message_start", { message: { id: `msg-${o.n}`, usage: { ...usage, output_tokens: 1 } } }), ev("ping", {})];
  if (o.text) {
    frames.push(ev("content_block_start", { index: 0, content_block: { type: "text", text: "" } }));
    for (const p of splitText(String(o.text), bh.chunks)) frames.push(ev("content_block_delta", { index: 0, delta: { type: "text_delta", text: p } }));
    frames.push(ev("content_block_stop", { index: 0 }));
  }
  toolUse.forEach((t, i) => {
    const index = i + (o.text ? 1 : 0);
    frames.push(ev("content_block_start", { index, content_block: { type: "tool_use", id: t.id, name: t.name, input: {} } }));
    frames.push(ev("content_block_delta", { index, delta: { type: "input_json_delta", partial_json: JSON.stringify(t.input) } }));
    frames.push(ev("content_block_stop", { index }));
  });
  frames.push(ev("message_delta", { delta: { stop_reason: stop }, usage: { output_tokens: usage.output_tokens } }), ev("message_stop", {}));
  res.writeHead(200, { "content-type": "text/event-stream", ...headers });
  for (const f of frames) {
    if (ctx.closed) return;
    await write(res, ctx, Buffer.from(f));
  }
  if (bh.holdOpen) return; // message_stop sent, the connection left open
  res.end();
}

// 1–7 byte writes with a turn of the event loop between them, so UTF-8 sequences and
// SSE lines straddle read boundaries on the client.
async function writeFragmented(res, ctx, buf) {
  for (let i = 0; i < buf.length && !ctx.closed; ) {
    const n = 1 + Math.floor(Math.random() * 7);
    await write(res, ctx, buf.subarray(i, i + n));
    i += n;
    await new Promise((r) => setImmediate(r));
  }
}
