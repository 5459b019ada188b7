// Configuration sources and formats, through real HTTP.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startMockUpstream } from "./helpers/mock-upstream.mjs";
import { startWorker, mockModel, postChat } from "./helpers/worker.mjs";

let mock;
before(async () => {
  mock = await startMockUpstream();
});
after(() => mock?.close());
beforeEach(() => mock.reset());

const user = (content) => [{ role: "user", content }];

async function withWorker(opts, fn) {
  const w = await startWorker(opts);
  try {
    await fn(w);
  } finally {
    await w.close();
  }
}

test("the original N-1 config.json works as-is, in both modes", async () => {
  const endpoint = `${mock.url}/v1/chat/completions`;
  const legacy = {
    api_bearer_token: "client-token",
    models: [
      { endpoint, bearer_token: "legacy-key-1", model_name: "old-1", temperature: 0.7, max_retries: 3, timeout: 150 },
      { endpoint, bearer_token: "legacy-key-2", model_name: "old-2" },
    ],
    summary_model: {
      endpoint,
      bearer_token: "legacy-key-s",
      model_name: "old-s",
      temperature: 0.1,
      summary_prompt: "LEGACY-SUMMARY-PROMPT",
      timeout: 150,
    },
    stream_status_feedback: true,
  };
  await withWorker({ config: legacy }, async (w) => {
    const client = new OpenAI({ apiKey: "client-token", baseURL: `${w.url}/v1`, maxRetries: 0 });
    mock.set("old-1", { text: "OLD-ONE" });
    const r = await client.chat.completions.create({ model: "n1", messages: user("hi") });
    assert.equal(r.model, "n1");
    assert.equal(r.choices[0].message.content, "answer from old-s");
    assert.equal(mock.requestsFor("old-1")[0].headers.authorization, "Bearer legacy-key-1");
    assert.equal(mock.requestsFor("old-2")[0].headers.authorization, "Bearer legacy-key-2");
    // The original's default temperature is 0.7.
    assert.equal(mock.requestsFor("old-2")[0].body.temperature, 0.7);
    const s = mock.requestsFor("old-s")[0];
    assert.equal(s.headers.authorization, "Bearer legacy-key-s");
    assert.equal(s.body.temperature, 0.1);
    assert.ok(s.body.messages[0].content.startsWith("LEGACY-SUMMARY-PROMPT"));
    assert.match(s.body.messages[0].content, /OLD-ONE/);

    // The model field may be absent, as original N-1 clients send anything.
    const stream = await client.chat.completions.create({ model: "n1", messages: user("hi"), stream: true });
    let text = "";
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? "";
    assert.equal(text, "answer from old-s");
    const models = await client.models.list();
    assert.deepEqual(models.data.map((m) => m.id), ["n1"]);
  });
});

test("KV config (CONFIG/config) takes precedence over N1_CONFIG", async () => {
  const mk = (name) => ({ ensembles: { [name]: { panel: [mockModel(mock, `${name}-p`)], summary: mockModel(mock, `${name}-s`) } } });
  await withWorker({ config: mk("from-var"), kv: { config: mk("from-kv") } }, async (w) => {
    const r = await postChat(w.url, { messages: user("x") });
    assert.equal((await r.json()).model, "from-kv");
  });
  await withWorker({ config: mk("from-var") }, async (w) => {
    const r = await postChat(w.url, { messages: user("x") });
    assert.equal((await r.json()).model, "from-var");
  });
});

test("a KV config change: the first request after 5 s is answered from the old copy while the isolate reads KV again, the next one sees the change", async () => {
  const mk = (name) => ({ ensembles: { [name]: { panel: [mockModel(mock, `${name}-p`)], summary: mockModel(mock, `${name}-s`) } } });
  await withWorker({ kv: { config: mk("old") } }, async (w) => {
    const model = async () => (await (await postChat(w.url, { messages: user("x") })).json()).model;
    assert.equal(await model(), "old");
    await (await w.mf.getKVNamespace("CONFIG")).put("config", JSON.stringify(mk("new")));
    assert.equal(await model(), "old", "within 5 s the isolate's copy answers");
    await new Promise((r) => setTimeout(r, 5200));
    // No request waits for KV: this one is answered from the copy, and starts the read.
    assert.equal(await model(), "old");
    const deadline = Date.now() + 5000;
    let got;
    while ((got = await model()) !== "new") {
      assert.ok(Date.now() < deadline, `still ${got}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // A config made invalid is not hidden behind the last good one.
    await (await w.mf.getKVNamespace("CONFIG")).put("config", JSON.stringify({ ensembles: {} }));
    await new Promise((r) => setTimeout(r, 5200));
    assert.equal(await model(), "new");
    const until = Date.now() + 5000;
    let r;
    while ((r = await postChat(w.url, { messages: user("x") })).status === 200) {
      await r.arrayBuffer();
      assert.ok(Date.now() < until, "the invalid config was never reported");
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(r.status, 500);
    assert.equal((await r.json()).error.code, "config_invalid");
  });
});

test("missing config: a 500 telling the operator how to configure", async () => {
  await withWorker({}, async (w) => {
    const r = await postChat(w.url, { messages: user("x") });
    assert.equal(r.status, 500);
    assert.equal(r.headers.get("content-type"), "application/json");
    const { error } = await r.json();
    assert.equal(error.code, "config_missing");
    assert.match(error.message, /N1_CONFIG/);
    assert.match(error.message, /CONFIG/);
    const m = await fetch(`${w.url}/v1/models`);
    assert.equal(m.status, 500);
  });
});

test("invalid config: a 500 naming what is wrong, never a secret", async () => {
  const bad = {
    ensembles: {
      e: { panel: ["missing-model"], summary: { endpoint: `${mock.url}/v1`, model: "s", temperature: "sk-live-SECRET-IN-WRONG-FIELD" } },
    },
  };
  await withWorker({ config: bad }, async (w) => {
    const r = await postChat(w.url, { messages: user("x") });
    assert.equal(r.status, 500);
    const text = await r.text();
    assert.ok(!text.includes("sk-live-SECRET"), text);
    const { error } = JSON.parse(text);
    assert.equal(error.code, "config_invalid");
    assert.match(error.message, /Invalid N-1 configuration/);
  });
  await withWorker({ config: "{ this is not json" }, async (w) => {
    const { error } = await (await postChat(w.url, { messages: user("x") })).json();
    assert.equal(error.code, "config_invalid");
  });
  const typo = { ensembles: { e: { panel: ["nope"], summary: mockModel(mock, "s") } } };
  await withWorker({ config: typo }, async (w) => {
    const { error } = await (await postChat(w.url, { messages: user("x") })).json();
    assert.match(error.message, /ensembles\.e\.panel\[0\] names a model that `models` does not define/);
  });
  // serde quotes unknown enum values in backticks (`unknown variant `…``), and a
  // dangling reference is a config value too: neither may reach the client.
  for (const leaky of [
    { ensembles: { e: { summary: { provider: "sk-live-SECRET-AS-PROVIDER", model: "s" } } } },
    { ensembles: { e: { panel: ["sk-live-SECRET-AS-REFERENCE"], summary: mockModel(mock, "s") } } },
    { default_ensemble: "sk-live-SECRET-AS-DEFAULT", ensembles: { e: { summary: mockModel(mock, "s") } } },
  ]) {
    await withWorker({ config: leaky }, async (w) => {
      const r = await postChat(w.url, { messages: user("x") });
      assert.equal(r.status, 500);
      const text = await r.text();
      assert.ok(!text.includes("SECRET"), text);
      assert.equal(JSON.parse(text).error.code, "config_invalid");
    });
  }
});

test("a model whose key secret is not set: a 500 naming the secret, no upstream call", async () => {
  const cfg = { ensembles: { e: { panel: [mockModel(mock, "p", { api_key_secret: "NOT_SET_KEY" })], summary: mockModel(mock, "s") } } };
  await withWorker({ config: cfg }, async (w) => {
    const r = await postChat(w.url, { messages: user("x") });
    assert.equal(r.status, 500);
    const { error } = await r.json();
    assert.match(error.message, /NOT_SET_KEY/);
    assert.equal(mock.requests.length, 0);
  });
});

test("a base URL endpoint gets /chat/completions appended", async () => {
  const cfg = { ensembles: { e: { panel: [{ endpoint: `${mock.url}/v1/`, model: "base-p" }], summary: { endpoint: `${mock.url}/v1`, model: "base-s" } } } };
  await withWorker({ config: cfg }, async (w) => {
    const r = await postChat(w.url, { messages: user("x") });
    assert.equal(r.status, 200);
    assert.equal(mock.requestsFor("base-p")[0].path, "/v1/chat/completions");
  });
  // Azure-style endpoints carry a query string: the path goes before it.
  const azure = { ensembles: { e: { panel: [], summary: { endpoint: `${mock.url}/openai/deployments/x?api-version=2024-10-21`, model: "azure-s" } } } };
  await withWorker({ config: azure }, async (w) => {
    const r = await postChat(w.url, { messages: user("x") });
    assert.equal(r.status, 200, await r.clone().text());
    assert.equal(mock.requestsFor("azure-s")[0].path, "/openai/deployments/x/chat/completions?api-version=2024-10-21");
  });
});
