// Access keys, anonymous mode, CORS (raw and from a real browser), rate
// limits, request limits, upstream endpoint rules, panics, and secrets that
// never leak: all through real HTTP.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import OpenAI from "openai";
import { chromium } from "playwright-core";
import { startMockUpstream } from "./helpers/mock-upstream.mjs";
import { startWorker, mockModel, postChat, parseSse } from "./helpers/worker.mjs";

let mock;
before(async () => {
  mock = await startMockUpstream();
});
after(() => mock?.close());
beforeEach(() => mock.reset());

const user = (content) => [{ role: "user", content }];
const ALICE = "ck-alice-key-0001";
const BOB = "ck-bob-key-00002";
const KEYS = JSON.stringify([{ key: ALICE, name: "alice", ensembles: ["council"] }, { key: BOB, name: "bob" }]);

function config() {
  return {
    default_ensemble: "council",
    ensembles: {
      council: { panel: [mockModel(mock, "sec-a")], summary: mockModel(mock, "sec-s") },
      private: { panel: [mockModel(mock, "priv-a")], summary: mockModel(mock, "priv-s") },
    },
  };
}

async function withWorker(opts, fn) {
  const w = await startWorker({ config: config(), ...opts });
  try {
    return await fn(w);
  } finally {
    await w.close();
  }
}

const bearer = (k) => ({ authorization: `Bearer ${k}` });

async function expectError(r, status, code) {
  assert.equal(r.status, status);
  assert.equal(r.headers.get("content-type"), "application/json");
  const { error } = await r.json();
  assert.equal(error.code, code);
  assert.equal(typeof error.message, "string");
  return error;
}

test("access keys: missing, wrong, another ensemble's, x-api-key; /v1/models lists only what a key may use", async () => {
  await withWorker({ bindings: { N1_API_KEYS: KEYS, N1_ALLOW_ANONYMOUS: undefined } }, async (w) => {
    let r = await postChat(w.url, { messages: user("x") });
    await expectError(r, 401, "invalid_api_key");
    assert.equal(r.headers.get("www-authenticate"), "Bearer");
    await expectError(await postChat(w.url, { messages: user("x") }, bearer("ck-not-a-real-key")), 401, "invalid_api_key");
    await expectError(await postChat(w.url, { messages: user("x") }, { authorization: `Basic ${ALICE}` }), 401, "invalid_api_key");
    const e = await expectError(await postChat(w.url, { model: "private", messages: user("x") }, bearer(ALICE)), 403, "model_not_allowed");
    assert.match(e.message, /private/);
    assert.equal(mock.requests.length, 0, "no upstream call for a refused request");

    r = await postChat(w.url, { messages: user("x") }, bearer(ALICE));
    assert.equal(r.status, 200);
    r = await postChat(w.url, { messages: user("x") }, { "x-api-key": ALICE });
    assert.equal(r.status, 200);
    r = await postChat(w.url, { model: "private", messages: user("x") }, bearer(BOB));
    assert.equal(r.status, 200);

    const list = async (k) => (await (await fetch(`${w.url}/v1/models`, { headers: bearer(k) })).json()).data.map((m) => m.id).sort();
    assert.deepEqual(await list(ALICE), ["council"]);
    assert.deepEqual(await list(BOB), ["council", "private"]);
    await expectError(await fetch(`${w.url}/v1/models`), 401, "invalid_api_key");
    // models.retrieve: a key sees only what it may use, like the list.
    assert.equal((await fetch(`${w.url}/v1/models/private`, { headers: bearer(BOB) })).status, 200);
    await expectError(await fetch(`${w.url}/v1/models/private`, { headers: bearer(ALICE) }), 404, "model_not_found");
    await expectError(await fetch(`${w.url}/v1/models/council`), 401, "invalid_api_key");

    const client = new OpenAI({ apiKey: "ck-wrong-key-999", baseURL: `${w.url}/v1`, maxRetries: 0 });
    await assert.rejects(client.chat.completions.create({ model: "council", messages: user("x") }), (err) => err.status === 401);
    const good = new OpenAI({ apiKey: ALICE, baseURL: `${w.url}/v1`, maxRetries: 0 });
    const reply = await good.chat.completions.create({ model: "council", messages: user("x") });
    assert.equal(reply.model, "council");
  });
});

test("no keys configured: every request is refused with a clear message, unless anonymous use is allowed", async () => {
  await withWorker({ bindings: { N1_ALLOW_ANONYMOUS: undefined } }, async (w) => {
    const e = await expectError(await postChat(w.url, { messages: user("x") }), 401, "auth_not_configured");
    assert.match(e.message, /N1_API_KEYS/);
    assert.match(e.message, /N1_ALLOW_ANONYMOUS/);
    await expectError(await fetch(`${w.url}/v1/models`), 401, "auth_not_configured");
    assert.equal(mock.requests.length, 0);
  });
  await withWorker({ bindings: { N1_ALLOW_ANONYMOUS: "true" } }, async (w) => {
    assert.equal((await postChat(w.url, { messages: user("x") })).status, 200);
  });
});

test("an unauthenticated client sees a 401, not the operator's config error", async () => {
  await withWorker({ config: "{broken", bindings: { N1_API_KEYS: KEYS, N1_ALLOW_ANONYMOUS: undefined } }, async (w) => {
    await expectError(await postChat(w.url, { messages: user("x") }), 401, "invalid_api_key");
    await expectError(await postChat(w.url, { messages: user("x") }, bearer(BOB)), 500, "config_invalid");
  });
});

test("CORS: preflight without auth or upstream calls; allowed and refused origins", async () => {
  await withWorker({ bindings: { N1_API_KEYS: KEYS, N1_ALLOW_ANONYMOUS: undefined, N1_CORS_ORIGINS: "https://app.test" } }, async (w) => {
    let r = await fetch(`${w.url}/v1/chat/completions`, {
      method: "OPTIONS",
      headers: { origin: "https://app.test", "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type, x-stainless-os" },
    });
    assert.equal(r.status, 204);
    assert.equal(r.headers.get("access-control-allow-origin"), "https://app.test");
    assert.match(r.headers.get("access-control-allow-methods"), /POST/);
    assert.equal(r.headers.get("access-control-allow-headers"), "authorization, content-type, x-stainless-os");

    r = await fetch(`${w.url}/v1/chat/completions`, { method: "OPTIONS", headers: { origin: "https://evil.test", "access-control-request-method": "POST" } });
    assert.equal(r.status, 403);
    assert.equal(r.headers.get("access-control-allow-origin"), null);

    r = await postChat(w.url, { messages: user("x") }, { origin: "https://app.test", ...bearer(ALICE) });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("access-control-allow-origin"), "https://app.test");
    assert.match(r.headers.get("access-control-expose-headers"), /x-n1-panel/);
    assert.match(r.headers.get("access-control-expose-headers"), /x-request-id/);
    assert.equal(mock.requests.length, 2, "only the allowed request reached upstream");

    // A "simple" cross-site POST needs no preflight; it must not spend money.
    r = await postChat(w.url, JSON.stringify({ messages: user("x") }), { origin: "https://evil.test", "content-type": "text/plain", ...bearer(ALICE) });
    await expectError(r, 403, "origin_not_allowed");
    assert.equal(mock.requests.length, 2);
    // Errors to allowed origins are readable by the page too.
    r = await postChat(w.url, { messages: user("x") }, { origin: "https://app.test" });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get("access-control-allow-origin"), "https://app.test");
  });
  await withWorker({ bindings: { N1_CORS_ORIGINS: "*" } }, async (w) => {
    const r = await postChat(w.url, { messages: user("x") }, { origin: "https://anyone.test" });
    assert.equal(r.headers.get("access-control-allow-origin"), "https://anyone.test");
  });
  await withWorker({}, async (w) => {
    // No N1_CORS_ORIGINS: cross-origin browsers are refused, non-browser clients are not.
    await expectError(await postChat(w.url, { messages: user("x") }, { origin: "https://app.test" }), 403, "origin_not_allowed");
    assert.equal((await postChat(w.url, { messages: user("x") })).status, 200);
  });
});

test("a real browser on another origin streams a reply through CORS; a refused origin cannot read it", async () => {
  const page = `<!doctype html><script>
    window.run = async (url, key) => {
      const r = await fetch(url + "/v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer " + key },
        body: JSON.stringify({ model: "council", stream: true, messages: [{ role: "user", content: "hi" }] }),
      });
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let text = "", reads = 0;
      for (;;) { const { value, done } = await reader.read(); if (done) break; reads++; text += dec.decode(value, { stream: true }); }
      return { status: r.status, text, reads, panel: r.headers.get("x-n1-ensemble") };
    };
  </script>`;
  const server = http.createServer((req, res) => res.end(page));
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const pageOrigin = `http://127.0.0.1:${server.address().port}`;
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
  try {
    await withWorker({ bindings: { N1_API_KEYS: KEYS, N1_ALLOW_ANONYMOUS: undefined, N1_CORS_ORIGINS: pageOrigin } }, async (w) => {
      mock.set("sec-s", { text: "streamed to the browser", chunks: 5, chunkDelayMs: 30 });
      const tab = await browser.newPage();
      await tab.goto(pageOrigin);
      const out = await tab.evaluate(([url, key]) => window.run(url, key), [w.url, ALICE]);
      assert.equal(out.status, 200);
      assert.equal(out.panel, "council", "exposed headers are readable");
      assert.ok(out.reads > 1, "the body arrived in pieces, not buffered");
      const text = parseSse(out.text).events.filter((e) => e !== "[DONE]").map((e) => e.choices?.[0]?.delta?.content ?? "").join("");
      assert.equal(text, "streamed to the browser");
    });
    mock.reset();
    await withWorker({ bindings: { N1_API_KEYS: KEYS, N1_ALLOW_ANONYMOUS: undefined, N1_CORS_ORIGINS: "https://elsewhere.test" } }, async (w) => {
      const tab = await browser.newPage();
      await tab.goto(pageOrigin);
      const err = await tab.evaluate(([url, key]) => window.run(url, key).then(() => "read", (e) => e.name), [w.url, ALICE]);
      assert.equal(err, "TypeError", "the browser blocked the response");
      assert.equal(mock.requestsFor("sec-s").length, 0);
    });
  } finally {
    await browser.close();
    server.close();
  }
});

test("rate limit per key (Cloudflare Rate Limiting binding): 429 with Retry-After", async () => {
  const ratelimits = { RATE_LIMITER: { simple: { limit: 3, period: 60 } } };
  await withWorker({ ratelimits, bindings: { N1_API_KEYS: KEYS, N1_ALLOW_ANONYMOUS: undefined } }, async (w) => {
    for (let i = 0; i < 3; i++) assert.equal((await postChat(w.url, { messages: user("x") }, bearer(ALICE))).status, 200);
    const calls = mock.requests.length;
    const r = await postChat(w.url, { messages: user("x") }, bearer(ALICE));
    const e = await expectError(r, 429, "rate_limit_exceeded");
    assert.equal(r.headers.get("retry-after"), "60");
    assert.match(e.message, /retry after 60 s/);
    assert.equal(mock.requests.length, calls, "no upstream call when limited");
    // Another key has its own budget.
    assert.equal((await postChat(w.url, { messages: user("x") }, bearer(BOB))).status, 200);
  });
  await withWorker({ ratelimits }, async (w) => {
    // Anonymous callers are limited per client IP.
    for (let i = 0; i < 3; i++) assert.equal((await postChat(w.url, { messages: user("x") }, { "cf-connecting-ip": "203.0.113.9" })).status, 200);
    assert.equal((await postChat(w.url, { messages: user("x") }, { "cf-connecting-ip": "203.0.113.9" })).status, 429);
    assert.equal((await postChat(w.url, { messages: user("x") }, { "cf-connecting-ip": "203.0.113.10" })).status, 200);
  });
});

function rawPost(url, body, { chunked }) {
  const u = new URL(`${url}/v1/chat/completions`);
  return new Promise((resolve, reject) => {
    const headers = { "content-type": "application/json" };
    if (!chunked) headers["content-length"] = Buffer.byteLength(body);
    let answered = false;
    const req = http.request({ hostname: u.hostname, port: u.port, path: u.pathname, method: "POST", headers, agent: false }, (res) => {
      answered = true;
      let data = "";
      res.on("data", (d) => (data += d));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    // The worker may answer 413 and close before the whole body is written.
    req.on("error", (e) => setTimeout(() => answered || reject(e), 500));
    if (chunked) {
      // Several writes and no content-length: the worker must count while reading.
      for (let i = 0; i < body.length; i += 1000) req.write(body.slice(i, i + 1000));
    } else {
      req.write(body);
    }
    req.end();
  });
}

test("request limits: oversized bodies (with and without content-length), too many messages, too much text", async () => {
  await withWorker({ bindings: { N1_MAX_BODY_BYTES: "4000", N1_MAX_MESSAGES: "3", N1_MAX_CHARS: "50" } }, async (w) => {
    const big = JSON.stringify({ messages: user("y".repeat(8000)) });
    for (const chunked of [false, true]) {
      const r = await rawPost(w.url, big, { chunked });
      assert.equal(r.status, 413, `chunked=${chunked}`);
      assert.equal(r.headers["content-type"], "application/json");
      assert.equal(JSON.parse(r.body).error.code, "request_too_large");
    }
    let r = await postChat(w.url, { messages: Array.from({ length: 4 }, () => ({ role: "user", content: "x" })) });
    assert.equal((await r.json()).error.code, "too_many_messages");
    r = await postChat(w.url, { messages: user("z".repeat(60)) });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).error.code, "too_much_text");
    assert.equal(mock.requests.length, 0, "no upstream call for a rejected request");
    assert.equal((await postChat(w.url, { messages: user("small") })).status, 200);
  });
});

test("upstream endpoints: plain http needs N1_ALLOW_INSECURE_UPSTREAMS, and never to a non-loopback host", async () => {
  await withWorker({ bindings: { N1_ALLOW_INSECURE_UPSTREAMS: undefined } }, async (w) => {
    const e = await expectError(await postChat(w.url, { messages: user("x") }), 500, "config_invalid");
    assert.match(e.message, /N1_ALLOW_INSECURE_UPSTREAMS/);
    assert.equal(mock.requests.length, 0);
  });
  // Hosts that only look like loopback (a name starting with `127.`) are remote hosts.
  for (const endpoint of ["http://example.com/v1", "http://127.evil.test/v1", "http://127.0.0.1.evil.test/v1"]) {
    const remote = { ensembles: { e: { panel: [{ endpoint, model: "m" }], summary: mockModel(mock, "s") } } };
    await withWorker({ config: remote }, async (w) => {
      const e = await expectError(await postChat(w.url, { messages: user("x") }), 500, "config_invalid");
      assert.match(e.message, /https/, endpoint);
    });
  }
});

test("a panic in the first request of a fresh instance (a preflight, before any routing) still answers with a JSON 500", async () => {
  await withWorker({ bindings: { N1_ENABLE_TEST_HOOKS: "true" } }, async (w) => {
    const r = await fetch(`${w.url}/v1/chat/completions`, {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "POST", "x-n1-test-panic": "now" },
      signal: AbortSignal.timeout(5000),
    });
    await expectError(r, 500, "internal_error");
    assert.equal((await postChat(w.url, { messages: user("x") })).status, 200, "the next request gets a fresh instance");
  });
});

test("a panic in the worker still answers with a JSON 500 (or an error event mid-stream), and the next request works", async () => {
  await withWorker({ bindings: { N1_ENABLE_TEST_HOOKS: "true" } }, async (w) => {
    const t0 = Date.now();
    const r = await postChat(w.url, { messages: user("x") }, { "x-n1-test-panic": "now" });
    await expectError(r, 500, "internal_error");
    assert.ok(Date.now() - t0 < 2000, "no hang");
    assert.equal((await postChat(w.url, { messages: user("x") })).status, 200);

    const s = await postChat(w.url, { stream: true, messages: user("x") }, { "x-n1-test-panic": "stream" });
    assert.equal(s.status, 200);
    const { events } = parseSse(await s.text());
    assert.equal(events.at(-2).error.code, "internal_error");
    assert.equal(events.at(-1), "[DONE]");
    assert.equal((await postChat(w.url, { stream: true, messages: user("x") })).status, 200);
  });
  await withWorker({}, async (w) => {
    // The hook is off unless the operator turns it on.
    assert.equal((await postChat(w.url, { messages: user("x") }, { "x-n1-test-panic": "now" })).status, 200);
  });
});

test("secrets never appear in responses, headers, stream events or logs, across every scenario", async () => {
  const SECRET = {
    PROVIDER_KEY_A: "sk-LEAKCHECK-provider-aaaaaaaa",
    PROVIDER_KEY_S: "sk-LEAKCHECK-provider-ssssssss",
  };
  const CLIENT_KEY = "ck-LEAKCHECK-client-00000001";
  const m = (name, secret) => mockModel(mock, name, { api_key_secret: secret, max_retries: 0 });
  const cfg = {
    ensembles: {
      leak: { panel: [m("lk-a", "PROVIDER_KEY_A"), m("lk-b", "PROVIDER_KEY_S")], summary: m("lk-s", "PROVIDER_KEY_S") },
      other: { panel: [m("lk-o", "PROVIDER_KEY_A")], summary: m("lk-os", "PROVIDER_KEY_S") },
    },
  };
  const keys = JSON.stringify([{ key: CLIENT_KEY, name: "leaktest", ensembles: ["leak"] }]);
  const seen = [];
  const record = async (r) => {
    seen.push(JSON.stringify([...r.headers]));
    seen.push(await r.text());
  };
  await withWorker({ config: cfg, bindings: { ...SECRET, N1_API_KEYS: keys, N1_ALLOW_ANONYMOUS: undefined, N1_CORS_ORIGINS: "https://app.test", N1_LOG_REQUESTS: "all" } }, async (w) => {
    const auth = bearer(CLIENT_KEY);
    const echo = (k) => ({ error: { message: `Incorrect API key provided: ${k}. You passed Authorization: Bearer ${k}` } });
    const scenarios = [
      () => mock.set("lk-a", {}),
      () => mock.set("lk-a", { status: 401, errorBody: echo(SECRET.PROVIDER_KEY_A) }),
      () => {
        mock.set("lk-a", { status: 500, errorBody: echo(SECRET.PROVIDER_KEY_A) });
        mock.set("lk-b", { status: 403, errorBody: `plain text with ${SECRET.PROVIDER_KEY_S}` });
      },
      () => mock.set("lk-s", { status: 401, errorBody: echo(SECRET.PROVIDER_KEY_S) }),
      () => mock.set("lk-s", { fault: "error-event" }),
      () => mock.set("lk-s", { fault: "cut" }),
    ];
    let keysSent = 0;
    for (const setup of scenarios) {
      mock.reset();
      setup();
      for (const stream of [false, true]) {
        await record(await postChat(w.url, { model: "leak", stream, messages: user("x"), n1: { progress: true } }, auth));
      }
      keysSent += mock.requests.filter((q) => q.headers.authorization === `Bearer ${SECRET.PROVIDER_KEY_A}`).length;
    }
    // Every scenario really used the keys: the check below is not vacuous.
    assert.ok(keysSent >= scenarios.length * 2);
    // The stream error event carries the upstream's message: it must be scrubbed too.
    mock.reset();
    mock.set("lk-s", { fault: "error-event" });
    await record(await postChat(w.url, { model: "leak", stream: true, messages: user("x") }, auth));
    await record(await postChat(w.url, { model: "other", messages: user("x") }, auth));
    await record(await postChat(w.url, { messages: user("x") }, bearer(CLIENT_KEY + "x")));
    await record(await postChat(w.url, { messages: user("x") }, { "x-api-key": CLIENT_KEY.slice(0, -1) }));
    await record(await postChat(w.url, "{bad json", auth));
    await record(await fetch(`${w.url}/v1/models`, { headers: auth }));
    await record(await postChat(w.url, { messages: user("x") }, { origin: "https://evil.test", ...auth }));
    await new Promise((r) => setTimeout(r, 300));
    const all = seen.join("\n") + "\n" + w.logs.join("\n");
    assert.ok(all.length > 2000);
    for (const s of [...Object.values(SECRET), CLIENT_KEY, "LEAKCHECK"]) {
      assert.ok(!all.includes(s), `leaked ${s}: …${all.slice(Math.max(0, all.indexOf(s) - 200), all.indexOf(s) + 50)}…`);
    }
    // Logs carry request ids and the key's name instead.
    assert.ok(w.logs.some((l) => /req_[A-Za-z0-9]{24} POST \/v1\/chat\/completions 200 \d+ms key:leaktest/.test(l)), w.logs.join("\n"));
  });
});

test("by default only failed requests are logged; N1_LOG_REQUESTS=all logs every request", async () => {
  const lines = (w) => w.logs.filter((l) => /req_[A-Za-z0-9]{24} /.test(l));
  for (const [mode, expectOk] of [[undefined, false], ["errors", false], ["all", true]]) {
    await withWorker({ bindings: { N1_LOG_REQUESTS: mode } }, async (w) => {
      assert.equal((await postChat(w.url, { model: "council", messages: user("x") })).status, 200);
      assert.equal((await postChat(w.url, { model: "nope", messages: user("x") })).status, 404);
      await new Promise((r) => setTimeout(r, 300));
      const l = lines(w);
      assert.equal(l.some((x) => / POST \/v1\/chat\/completions 200 /.test(x)), expectOk, `${mode}: ${l.join("\n")}`);
      assert.ok(l.some((x) => / POST \/v1\/chat\/completions 404 /.test(x)), `${mode}: ${l.join("\n")}`);
    });
  }
});
