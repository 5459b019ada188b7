// Costs through real HTTP: the worker in workerd (Miniflare) against the mock
// upstream, whose every call reports 10 prompt and 5 completion tokens. Each
// cost below is computed by hand from those and the configured prices (USD per
// million tokens).
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startMockUpstream } from "./helpers/mock-upstream.mjs";
import { startWorker, mockModel, postChat, parseSse } from "./helpers/worker.mjs";
import { post as postMessages } from "./helpers/messages.mjs";

let mock, w;
const KEY = "key-costs-0001";
const auth = { authorization: `Bearer ${KEY}` };
const user = [{ role: "user", content: "What is 2+2?" }];
const price = (input, output, cached_input) => ({ price: { input, output, ...(cached_input ? { cached_input } : {}) } });
/** USD of one call: `p` prompt and `c` completion tokens at `input`/`output` per million. */
const usd = (input, output, p = 10, c = 5) => (p * input + c * output) / 1e6;
const close = (a, b, what) => assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} ≠ ${b}`);

const GEMMA = "@cf/google/gemma-4-26b-a4b-it"; // built-in price: $0.10 in, $0.30 out

function config() {
  const m = (name, extra) => mockModel(mock, name, extra);
  const anthropic = (name, extra) => ({ provider: "anthropic", endpoint: `${mock.url}/v1`, model: name, ...extra });
  return {
    ensembles: {
      // OpenAI-compatible panel, Anthropic summary.
      mixed: { panel: [m("c-a", price(0.15, 0.6)), m("c-b", price(1, 2))], summary: anthropic("c-s", price(3, 15)) },
      // Workers AI: a built-in price, and an explicit one that wins.
      wai: { panel: [{ provider: "workers-ai", model: GEMMA }], summary: { provider: "workers-ai", model: GEMMA, ...price(1, 1) } },
      // One model without a price.
      unpriced: { panel: [m("u-a", price(1, 1)), m("u-b")], summary: m("u-s", price(1, 1)) },
      cached: { panel: [], summary: m("k-s", price(2, 8, 0.5)) },
      // An Anthropic model: its cache reads default to 0.1 × input, writes to 1.25 ×.
      written: { panel: [], summary: anthropic("w-s", price(3, 15)) },
      // Anthropic models throughout, for prompt caching through /v1/messages.
      claude: { panel: [anthropic("cc-a", price(3, 15)), anthropic("cc-b", price(3, 15))], summary: anthropic("cc-s", price(3, 15)) },
      cut: { panel: [m("x-a", price(1, 1))], summary: m("x-s", price(1, 1)) },
      gone: { panel: [m("g-a", price(1, 1))], summary: m("g-s", price(1, 1)) },
    },
  };
}

before(async () => {
  mock = await startMockUpstream();
  w = await startWorker({ config: config(), aiMockUrl: mock.url, bindings: { N1_API_KEYS: JSON.stringify([{ key: KEY, name: "costs" }]) } });
});
after(async () => {
  await w?.close();
  await mock?.close();
});
beforeEach(() => mock.reset());

async function usage() {
  const r = await fetch(`${w.url}/v1/n1/usage`, { headers: auth });
  assert.equal(r.status, 200);
  return r.json();
}

/** Polls the usage until `pred` holds (settlement is dispatched as the reply ends). */
async function usageWhen(pred, what) {
  let u;
  for (let i = 0; i < 50; i++) {
    u = await usage();
    if (pred(u)) return u;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${what}: ${JSON.stringify(u)}`);
}

test("non-streaming: each call's cost, the summary's and the total in n1 and x-n1-cost-usd, across providers", async () => {
  const r = await postChat(w.url, { model: "mixed", messages: user });
  assert.equal(r.status, 200);
  const { n1 } = await r.json();
  const [a, b, s] = [usd(0.15, 0.6), usd(1, 2), usd(3, 15)];
  close(n1.panel[0].cost_usd, a, "panel[0]");
  close(n1.panel[1].cost_usd, b, "panel[1]");
  close(n1.summary.cost_usd, s, "anthropic summary");
  close(n1.cost_usd, a + b + s, "total");
  assert.equal(n1.cost_estimated, undefined, "all reported by the providers");
  close(Number(r.headers.get("x-n1-cost-usd")), a + b + s, "header");
  assert.match(r.headers.get("x-n1-cost-usd"), /^0\.\d+$/, "plain decimal");
});

test("streaming: the same costs ride on the chunk that carries n1 (OpenAI SDK, Anthropic summary stream)", async () => {
  const client = new OpenAI({ apiKey: KEY, baseURL: `${w.url}/v1`, maxRetries: 0 });
  const stream = await client.chat.completions.create({ model: "mixed", stream: true, messages: user });
  let n1;
  for await (const chunk of stream) n1 ??= chunk.n1;
  const total = usd(0.15, 0.6) + usd(1, 2) + usd(3, 15);
  close(n1.summary.cost_usd, usd(3, 15), "summary");
  close(n1.cost_usd, total, "total");
});

test("the Responses API carries the same n1 costs, both modes", async () => {
  const body = { model: "mixed", input: "What is 2+2?" };
  const r = await fetch(`${w.url}/v1/responses`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const total = usd(0.15, 0.6) + usd(1, 2) + usd(3, 15);
  close((await r.json()).n1.cost_usd, total, "non-streaming");
  close(Number(r.headers.get("x-n1-cost-usd")), total, "header");
  const s = await fetch(`${w.url}/v1/responses`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...body, stream: true }) });
  const completed = parseSse(await s.text()).events.find((e) => e.type === "response.completed");
  close(completed.response.n1.cost_usd, total, "streaming");
});

test("Workers AI models carry their published price unless the config sets one", async () => {
  for (const stream of [false, true]) {
    const r = await postChat(w.url, { model: "wai", stream, messages: user });
    const n1 = stream ? parseSse(await r.text()).events.find((e) => e.n1)?.n1 : (await r.json()).n1;
    close(n1.panel[0].cost_usd, usd(0.1, 0.3), `built-in price (stream: ${stream})`);
    close(n1.summary.cost_usd, usd(1, 1), `explicit price (stream: ${stream})`);
  }
});

test("a model without a price: its cost and the total are null, not 0, and there is no cost header", async () => {
  const r = await postChat(w.url, { model: "unpriced", messages: user });
  const body = await r.json();
  assert.equal(body.n1.panel[1].cost_usd, null);
  assert.ok("cost_usd" in body.n1.panel[1] && "cost_usd" in body.n1, "present, as null");
  assert.equal(body.n1.cost_usd, null);
  close(body.n1.panel[0].cost_usd, usd(1, 1), "the priced member keeps its cost");
  assert.equal(r.headers.get("x-n1-cost-usd"), null);
  const s = await postChat(w.url, { model: "unpriced", stream: true, messages: user });
  const n1 = parseSse(await s.text()).events.find((e) => e.n1).n1;
  assert.equal(n1.cost_usd, null);
  assert.equal(n1.panel[1].cost_usd, null);
});

test("cached prompt tokens are charged at the cached price and shown in usage", async () => {
  mock.set("k-s", { usage: { prompt_tokens: 1000, completion_tokens: 100, total_tokens: 1100, prompt_tokens_details: { cached_tokens: 800 } } });
  const r = await postChat(w.url, { model: "cached", messages: user });
  const body = await r.json();
  close(body.n1.cost_usd, (200 * 2 + 800 * 0.5 + 100 * 8) / 1e6, "cached");
  assert.deepEqual(body.usage.prompt_tokens_details, { cached_tokens: 800 });
});

test("an Anthropic model's cache reads cost 0.1 × input and writes 1.25 × (one-hour writes 2 ×) by default, both modes", async () => {
  // 10 plain input tokens, 80 read from the cache, 60 written to it (20 of them for an hour).
  const counts = { cache_read_input_tokens: 80, cache_creation_input_tokens: 60, cache_creation: { ephemeral_5m_input_tokens: 40, ephemeral_1h_input_tokens: 20 } };
  mock.set("w-s", { anthropicUsage: counts });
  const expected = (10 * 3 + 80 * 0.3 + 40 * 3.75 + 20 * 6 + 5 * 15) / 1e6;
  const r = await postChat(w.url, { model: "written", messages: user });
  const body = await r.json();
  close(body.n1.cost_usd, expected, "non-streaming");
  assert.equal(body.usage.prompt_tokens, 150, "the prompt counts reads and writes");
  const s = await postChat(w.url, { model: "written", stream: true, messages: user });
  close(parseSse(await s.text()).events.find((e) => e.n1).n1.cost_usd, expected, "streaming");
});

test("a Messages client's cache marks ask Anthropic upstreams to cache prompts that begin as the client's, and the writes are charged", async () => {
  const system = [{ type: "text", text: "You are a coding agent.", cache_control: { type: "ephemeral" } }];
  const body = (messages, extra = {}) => ({ model: "claude", max_tokens: 1024, system, messages, ...extra });
  mock.set("cc-a", { anthropicUsage: { cache_creation_input_tokens: 60 } });
  const r = await postMessages(w.url, body([{ role: "user", content: "List the files." }]));
  assert.equal(r.status, 200);
  const { n1, usage } = await r.json();
  // Three calls of 10 plain input tokens, and the 60 written: reported as Anthropic reports them.
  assert.deepEqual([usage.input_tokens, usage.cache_creation_input_tokens, usage.cache_read_input_tokens], [30, 60, 0]);
  const sent = (model) => mock.requestsFor(model).map((q) => q.body.cache_control);
  // The panel's prompts are the client's: cached. The summary's begins with the panel's answers: not.
  assert.deepEqual([sent("cc-a"), sent("cc-b"), sent("cc-s")], [[{ type: "ephemeral" }], [{ type: "ephemeral" }], [undefined]]);
  close(n1.panel[0].cost_usd, (10 * 3 + 60 * 3.75 + 5 * 15) / 1e6, "the write at 1.25 × input");
  close(n1.panel[1].cost_usd, usd(3, 15), "no cache counts: the plain price");
  // A tool turn goes to the summary model alone, with the client's prompt: cached, for the hour asked.
  mock.reset();
  const turn = [
    { role: "user", content: "List the files." },
    { role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "Bash", input: { command: "ls" } }] },
    { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "a.txt" }] },
  ];
  const tools = [{ name: "Bash", input_schema: { type: "object" } }];
  assert.equal((await postMessages(w.url, body(turn, { tools, cache_control: { type: "ephemeral", ttl: "1h" } }))).status, 200);
  assert.deepEqual([sent("cc-a").length, sent("cc-s")], [0, [{ type: "ephemeral", ttl: "1h" }]]);
  // Without marks, and from a Chat Completions client, nothing is cached.
  mock.reset();
  assert.equal((await postMessages(w.url, { ...body([{ role: "user", content: "hi" }]), system: "plain" })).status, 200);
  assert.equal((await postChat(w.url, { model: "claude", messages: user })).status, 200);
  assert.deepEqual(mock.requests.map((q) => q.body.cache_control), Array(6).fill(undefined));
});

test("a stream cut mid-way is charged for what was sent and received, estimated", async () => {
  const before = (await usage()).day;
  mock.set("x-s", { fault: "cut", text: "a fairly long answer that will be cut in the middle", chunks: 8 });
  const r = await postChat(w.url, { model: "cut", stream: true, messages: user }, auth);
  const { events } = parseSse(await r.text());
  assert.ok(events.some((e) => e.error), "the stream ended with an error event");
  assert.ok(!events.some((e) => e.n1), "no n1: the answer did not finish");
  const after = await usageWhen((u) => u.day.requests === before.requests + 1, "the cut request settled");
  const spent = after.day.usd - before.usd;
  const input = after.day.input_tokens - before.input_tokens;
  const output = after.day.output_tokens - before.output_tokens;
  // The panel member's 10 + 5 as reported; the summary's input estimated from
  // its body (characters / 4) and its output from what arrived before the cut.
  assert.ok(input > 10 + 20, `summary input estimated from its body: ${input}`);
  assert.ok(output > 5 && output < 5 + 20, `summary output from what arrived: ${output}`);
  close(spent, (input * 1 + output * 1) / 1e6, "cost of the tokens counted");
});

test("a client that leaves mid-stream is charged for the calls made", async () => {
  const before = (await usage()).day;
  mock.set("g-s", { text: "x".repeat(400), chunks: 40, chunkDelayMs: 50 });
  const ac = new AbortController();
  const r = await postChat(w.url, { model: "gone", stream: true, messages: user }, auth, ac.signal);
  const reader = r.body.getReader();
  let seen = "";
  while (!seen.includes("xxxx")) seen += new TextDecoder().decode((await reader.read()).value);
  ac.abort();
  await mock.waitFor(() => mock.requestsFor("g-s").every((q) => q.endedAt), 5000);
  assert.ok(mock.requestsFor("g-s")[0].closedEarly, "the summary's stream was aborted");
  const after = await usageWhen((u) => u.day.requests === before.requests + 1, "the abandoned request settled");
  const output = after.day.output_tokens - before.output_tokens;
  assert.ok(output > 5 && output < 5 + 100, `panel output + what arrived of the summary: ${output}`);
  assert.ok(after.day.usd > before.usd + usd(1, 1), "more than the panel member alone");
});

test("a client that leaves a non-streaming request is charged for the calls made", async () => {
  const before = (await usage()).day;
  mock.set("g-s", { delayMs: 1500 });
  const ac = new AbortController();
  const pending = postChat(w.url, { model: "gone", messages: user }, auth, ac.signal).catch((e) => e.name);
  await mock.waitFor(() => mock.requestsFor("g-s").length === 1, 5000);
  ac.abort();
  assert.equal(await pending, "AbortError");
  // workerd lets the handler finish (nothing can be sent any more): its calls settle.
  const after = await usageWhen((u) => u.day.requests === before.requests + 1, "the abandoned request settled");
  close(after.day.usd - before.usd, 2 * usd(1, 1), "the panel member and the summary, as reported");
});
