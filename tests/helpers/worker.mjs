// Starts the built worker (build/index.js) in workerd through Miniflare, serving
// real HTTP on 127.0.0.1. Config and secrets are injected as bindings.
import { readFileSync } from "node:fs";
import { Miniflare, Log, LogLevel } from "miniflare";

// The same compatibility settings as `wrangler dev` / deploy use.
const toml = readFileSync(new URL("../../wrangler.toml", import.meta.url), "utf8");
export const COMPAT_DATE = toml.match(/^compatibility_date\s*=\s*"([^"]+)"/m)[1];
const COMPAT_FLAGS = JSON.parse(toml.match(/^compatibility_flags\s*=\s*(\[.*\])/m)?.[1] ?? "[]");

// The static assets (the chat page) exactly as `wrangler dev` serves them: wrangler's
// own translation of wrangler.toml's [assets] (directory, run_worker_first routing).
async function assetsOptions() {
  const { unstable_getMiniflareWorkerOptions } = await import("wrangler");
  const { assets } = unstable_getMiniflareWorkerOptions(new URL("../../wrangler.toml", import.meta.url).pathname).workerOptions;
  if (!assets) throw new Error("wrangler.toml has no [assets] section");
  return assets;
}

/** Lines the worker logged (console.log), for secret-leak checks. */
export class CapturingLog extends Log {
  constructor() {
    super(LogLevel.INFO);
    this.lines = [];
  }
  log(message) {
    this.lines.push(String(message));
  }
}

/**
 * @param {object} opts
 * @param {object|string} [opts.config]  N1_CONFIG (object is JSON-encoded)
 * @param {object} [opts.bindings]       extra vars/secrets
 * @param {object} [opts.kv]             initial CONFIG KV contents
 * @param {boolean} [opts.assets]        also serve the static assets (the chat page), as deployed
 * @param {string} [opts.aiMockUrl]      bind AI to a mock of the Workers AI binding backed by this mock upstream
 * @param {string} [opts.aiShape]        "native" ({response}) or "openai" (choices), what the mock AI answers in
 * @param {boolean} [opts.budgets]       bind the budget Durable Object as N1_BUDGET (default true, as wrangler.toml does)
 * @param {string} [opts.persist]        a directory to keep Durable Object storage in (survives a restart)
 * @param {string} [opts.metricsUrl]     bind N1_METRICS to a stand-in that POSTs each data point to this URL
 */
/** Test defaults: plain-http loopback upstreams (the mock) and no access keys. */
export const TEST_BINDINGS = { N1_ALLOW_INSECURE_UPSTREAMS: "true", N1_ALLOW_ANONYMOUS: "true" };

// A stand-in for the Workers AI binding: `run(model, input)` forwards to the
// mock upstream as an OpenAI call and answers in Workers AI's shapes
// ({response, usage} or an SSE stream of {response} events), or with
// `aiShape: "openai"` in the OpenAI shapes the 2026 models use (the upstream's
// completion and chunks as they are). An upstream error body shaped like Workers
// AI's ({internalCode, name, description}, e.g. via mock.set(model, {status: 400,
// errorBody})) makes run() reject as the real binding does: an Error whose
// message is "<internalCode>: <description>".
const AI_MOCK = `
export default function (env) {
  return {
    async run(model, input) {
      const r = await fetch(env.MOCK_URL + "/v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json", "x-workers-ai": "1" },
        body: JSON.stringify({ model, ...input, ...(input.stream ? { stream_options: { include_usage: true } } : {}) }),
      });
      if (!r.ok) {
        const e = await r.json().catch(() => ({}));
        if (e.internalCode) {
          const err = new Error(e.internalCode + ": " + e.description);
          err.name = e.name ?? "InferenceUpstreamError";
          throw err;
        }
        throw new Error("AI run failed: " + r.status);
      }
      if (env.AI_SHAPE === "openai") return input.stream ? r.body : await r.json();
      if (!input.stream) {
        const j = await r.json();
        return { response: j.choices[0].message.content, usage: j.usage };
      }
      const dec = new TextDecoder(), enc = new TextEncoder();
      let buf = "";
      return r.body.pipeThrough(new TransformStream({
        transform(chunk, c) {
          buf += dec.decode(chunk, { stream: true });
          let i;
          while ((i = buf.indexOf("\\n\\n")) >= 0) {
            const line = buf.slice(0, i).replace(/^data: /, "");
            buf = buf.slice(i + 2);
            if (line === "[DONE]") { c.enqueue(enc.encode("data: [DONE]\\n\\n")); continue; }
            const j = JSON.parse(line);
            const out = j.usage ? { response: "", usage: j.usage } : { response: j.choices?.[0]?.delta?.content ?? "" };
            c.enqueue(enc.encode("data: " + JSON.stringify(out) + "\\n\\n"));
          }
        },
      }));
    },
  };
}`;

// A stand-in for the Analytics Engine binding: each data point is POSTed as JSON
// to METRICS_URL (the real binding's writeDataPoint returns nothing; this one
// returns the POST's promise, which the worker waits on).
const METRICS_MOCK = `
export default function (env) {
  return {
    writeDataPoint(point) {
      return fetch(env.METRICS_URL, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(point) }).then((r) => r.arrayBuffer()).then(() => {});
    },
  };
}`;

export async function startWorker({ config, bindings = {}, kv = {}, ratelimits, aiMockUrl, aiShape = "native", assets = false, budgets = true, persist, metricsUrl } = {}) {
  const log = new CapturingLog();
  const b = { ...TEST_BINDINGS, ...bindings };
  for (const [k, v] of Object.entries(b)) if (v === undefined) delete b[k];
  if (config !== undefined) b.N1_CONFIG = typeof config === "string" ? config : JSON.stringify(config);
  const n1 = {
    name: "n1",
    modules: true,
    scriptPath: "worker/entry.mjs",
    modulesRoot: ".",
    modulesRules: [
      { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    compatibilityDate: COMPAT_DATE,
    compatibilityFlags: COMPAT_FLAGS,
    bindings: b,
    kvNamespaces: ["CONFIG", "N1_STORE"],
    ...(ratelimits ? { ratelimits } : {}),
    ...(assets ? { assets: await assetsOptions() } : {}),
    ...(budgets ? { durableObjects: { N1_BUDGET: { className: "N1Budget", useSQLite: true } } } : {}),
  };
  const wrapped = {
    ...(aiMockUrl ? { AI: { scriptName: "ai-mock", bindings: { MOCK_URL: aiMockUrl, AI_SHAPE: aiShape } } } : {}),
    ...(metricsUrl ? { N1_METRICS: { scriptName: "metrics-mock", bindings: { METRICS_URL: metricsUrl } } } : {}),
  };
  if (Object.keys(wrapped).length) n1.wrappedBindings = wrapped;
  const workers = [n1];
  if (aiMockUrl) workers.push({ name: "ai-mock", modules: true, script: AI_MOCK });
  if (metricsUrl) workers.push({ name: "metrics-mock", modules: true, script: METRICS_MOCK });
  const mf = new Miniflare({
    workers,
    host: "127.0.0.1",
    port: 0,
    cf: false,
    log,
    ...(persist ? { durableObjectsPersist: persist } : {}),
    handleRuntimeStdio(stdout, stderr) {
      const collect = (s) => s.on("data", (d) => log.lines.push(...String(d).split("\n").filter(Boolean)));
      collect(stdout);
      collect(stderr);
    },
  });
  const url = await mf.ready;
  const ns = await mf.getKVNamespace("CONFIG");
  for (const [k, v] of Object.entries(kv)) await ns.put(k, typeof v === "string" ? v : JSON.stringify(v));
  const base = url.href.replace(/\/$/, "");
  return {
    mf,
    url: base,
    logs: log.lines,
    async close() {
      await mf.dispose();
    },
  };
}

/** A model entry pointing at the mock upstream. */
export function mockModel(mock, model, extra = {}) {
  return { endpoint: `${mock.url}/v1/chat/completions`, model, ...extra };
}

/** Parse an SSE body into `data:` payloads (JSON-decoded unless [DONE]) and comment lines. */
export function parseSse(text) {
  const events = [];
  const comments = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(":")) comments.push(line);
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (data.length) {
      const d = data.join("\n");
      events.push(d === "[DONE]" ? d : JSON.parse(d));
    }
  }
  return { events, comments };
}

export async function postChat(url, body, headers = {}, signal = undefined) {
  return fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal,
  });
}
