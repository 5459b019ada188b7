// Fast mock OpenAI upstream for the benchmarks, run as its own process (forked by
// bench/run.mjs) so its CPU is separate from the load generator's and the worker's.
//
// Behaviour comes from the URL path, so it is fixed per configured model and the
// request body never has to be parsed:  /m/<spec>/v1/chat/completions
//   spec = dash-separated keys: d<ms> delay before the answer (headers) is sent,
//          s<bytes> answer size, c<n> stream content chunks (default: s/64 or 10),
//          i<ms> interval between stream chunks (0: the whole stream in one write),
//          t   embed the send time (CLOCK_MONOTONIC ns) in each streamed content chunk.
// Streaming vs not is read from the body (`"stream":true`, as serde_json and
// JSON.stringify write it). Bodies without timestamps are precomputed per spec.
//
// Control is over IPC: {cmd: "log", on} records per-request [arrival, finish] times
// (monotonic ns, comparable across processes on Linux); {cmd: "take"} returns and
// clears them; {cmd: "stats"} returns counts (requests, aborted responses).
import http from "node:http";

const now = () => process.hrtime.bigint(); // CLOCK_MONOTONIC, system-wide on Linux
const USAGE = { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 };
const WORDS = "the quick brown fox jumps over the lazy dog while light scatters in the sky ".repeat(8);

function text(size) {
  let s = "";
  while (s.length < size) s += WORDS;
  return s.slice(0, size);
}

function parseSpec(spec) {
  const o = { d: 0, s: 64, c: 0, i: 0, t: false };
  for (const part of spec.split("-")) {
    const k = part[0];
    if (k === "t") o.t = true;
    else if (k in o) o[k] = Number(part.slice(1));
  }
  if (!o.c) o.c = o.t ? 200 : Math.max(1, Math.ceil(o.s / 64));
  return o;
}

const base = (model) => ({ id: "mock-1", object: "chat.completion.chunk", created: 1700000000, model });
const frame = (obj) => `data: ${typeof obj === "string" ? obj : JSON.stringify(obj)}\n\n`;
const chunk = (model, delta, finish = null) => frame({ ...base(model), choices: [{ index: 0, delta, finish_reason: finish }] });

class Behaviour {
  constructor(spec) {
    this.o = parseSpec(spec);
    const model = `mock-${spec}`;
    this.model = model;
    const answer = text(this.o.s);
    this.json = Buffer.from(
      JSON.stringify({
        id: "mock-1",
        object: "chat.completion",
        created: 1700000000,
        model,
        choices: [{ index: 0, message: { role: "assistant", content: answer }, finish_reason: "stop" }],
        usage: USAGE,
      }),
    );
    this.role = chunk(model, { role: "assistant", content: "" });
    this.tail = chunk(model, {}, "stop") + frame({ ...base(model), choices: [], usage: USAGE }) + frame("[DONE]");
    const n = this.o.c;
    const per = Math.ceil(answer.length / n);
    this.pieces = Array.from({ length: n }, (_, k) => chunk(model, { content: answer.slice(k * per, (k + 1) * per) || "." }));
    this.whole = Buffer.from(this.role + this.pieces.join("") + this.tail);
  }
  // Content piece k with its send time: "T" + 20 digits + padding, constant size.
  stamped() {
    return chunk(this.model, { content: `T${now().toString().padStart(20, "0")} ` });
  }
}

const behaviours = new Map();
const get = (spec) => {
  let b = behaviours.get(spec);
  if (!b) behaviours.set(spec, (b = new Behaviour(spec)));
  return b;
};

let logging = false;
let log = [];
let requests = 0;
let aborted = 0;

const JSON_HEADERS = { "content-type": "application/json" };
const SSE_HEADERS = { "content-type": "text/event-stream", "cache-control": "no-cache" };

const server = http.createServer((req, res) => {
  const t0 = now();
  requests++;
  const m = /^\/m\/([^/]+)\//.exec(req.url);
  const bodyParts = [];
  req.on("data", (d) => bodyParts.push(d));
  req.on("end", () => {
    if (!m) {
      res.writeHead(404, JSON_HEADERS);
      return res.end('{"error":{"message":"mock: no route"}}');
    }
    const b = get(m[1]);
    // N-1 (serde) and the reference (JSON.stringify) both write `"stream":true` without spaces.
    const raw = Buffer.concat(bodyParts).toString("latin1");
    const stream = raw.includes('"stream":true');
    let done = false;
    res.on("close", () => {
      if (!res.writableFinished) aborted++;
      if (logging) log.push([Number(t0), Number(now()), done ? 1 : 0]);
    });
    res.on("finish", () => (done = true));
    const go = () => (stream ? sendStream(res, b) : sendJson(res, b));
    if (b.o.d > 0) setTimeout(go, b.o.d);
    else go();
  });
});

function sendJson(res, b) {
  res.writeHead(200, { ...JSON_HEADERS, "content-length": b.json.length });
  res.end(b.json);
}

function sendStream(res, b) {
  const { c, i, t } = b.o;
  if (!t && i <= 0) {
    res.writeHead(200, { ...SSE_HEADERS, "content-length": b.whole.length });
    return res.end(b.whole);
  }
  res.writeHead(200, SSE_HEADERS);
  // Role chunk and first content chunk at once, then one content chunk every i ms,
  // scheduled against absolute times so timer overshoot does not accumulate.
  res.write(b.role + (t ? b.stamped() : b.pieces[0]));
  const start = performance.now();
  let k = 1;
  const next = () => {
    if (res.destroyed) return;
    if (k >= c) return res.end(b.tail);
    res.write(t ? b.stamped() : b.pieces[k]);
    k++;
    const wait = start + k * i - performance.now();
    if (i > 0) setTimeout(next, Math.max(0, wait));
    else setImmediate(next);
  };
  if (c > 1) setTimeout(next, i);
  else res.end(b.tail);
}

server.keepAliveTimeout = 60_000;
server.headersTimeout = 65_000;
server.listen(0, "127.0.0.1", () => {
  process.send({ ready: true, port: server.address().port, pid: process.pid });
});

process.on("message", (msg) => {
  const reply = (v) => process.send({ id: msg.id, ...v });
  switch (msg.cmd) {
    case "log":
      logging = msg.on;
      log = [];
      return reply({ ok: true });
    case "take-peek":
      return reply({ log: log.length });
    case "take": {
      const l = log;
      log = [];
      return reply({ log: l });
    }
    case "stats":
      return reply({ requests, aborted, cpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000 });
    case "exit":
      server.closeAllConnections();
      server.close(() => process.exit(0));
      return;
  }
});
process.on("disconnect", () => process.exit(0));
