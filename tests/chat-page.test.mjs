// The chat page (public/), end to end: the worker serving its static assets in
// workerd (as `wrangler dev` does, from wrangler.toml's [assets]) + the mock
// upstream, driven by Debian's headless Chromium through playwright-core.
// The page's pure parts (Markdown renderer, SSE parser) are also tested in Node.
import { test, describe, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";
import { startMockUpstream } from "./helpers/mock-upstream.mjs";
import { startWorker, mockModel } from "./helpers/worker.mjs";
import { renderMarkdown } from "../public/markdown.js";
import { SseParser } from "../public/sse.js";

const ARTIFACTS = new URL("../test-artifacts/", import.meta.url).pathname;
const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };
const XSS_SCRIPT = "<script>window.__pwned=1</script>";
const XSS_IMG = '<img src=x onerror="window.__pwned=1">';

// ---------------------------------------------------------------------------
// Pure parts, in Node.

describe("markdown renderer", () => {
  // Every tag in the output is one the renderer writes, with only its own attributes.
  const TAGS = /^(p|br|strong|em|del|code|pre|a|ul|ol|li|h[3-6]|blockquote|hr)$/;
  const ATTRS = /^(?:\s+(?:href="https?:\/\/[^"<>]*"|target="_blank"|rel="noopener noreferrer nofollow"|class="language-[\w-]*"|start="\d+"))*$/;
  const noMarkupFrom = (html) => {
    for (const [tag, name, attrs] of html.matchAll(/<\/?([^\s>/]+)([^>]*)>/g)) {
      assert.match(name, TAGS, `${tag} in ${html}`);
      assert.match(attrs, ATTRS, `${tag} in ${html}`);
    }
  };

  test("HTML in model output is escaped, never markup", () => {
    for (const src of [
      XSS_SCRIPT,
      XSS_IMG,
      "<svg onload=alert(1)>",
      '<a href="javascript:alert(1)">x</a>',
      "[x](javascript:alert(1))",
      "[x](JaVaScRiPt:alert(1))",
      '[x](https://a.test/"onmouseover="alert(1))',
      "[x](data:text/html,<script>alert(1)</script>)",
      "**<img src=x onerror=alert(1)>**",
      "`<script>`",
      "```html\n<script>alert(1)</script>\n```",
      "- <iframe src=x>\n- ok",
      "> <style>body{}</style>",
      "# <script>x</script>",
      '```"><img src=x onerror=alert(1)>\ncode\n```',
      "\0<script>\0",
    ]) {
      noMarkupFrom(renderMarkdown(src));
    }
    assert.equal(renderMarkdown(XSS_SCRIPT), "<p>&lt;script&gt;window.__pwned=1&lt;/script&gt;</p>");
    assert.equal(renderMarkdown(XSS_IMG), "<p>&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;</p>");
  });

  test("the subset: code, emphasis, links, lists, headings, quotes, paragraphs", () => {
    assert.equal(renderMarkdown("a **b** *c* _d_ ~~e~~ `f*g*`"), "<p>a <strong>b</strong> <em>c</em> <em>d</em> <del>e</del> <code>f*g*</code></p>");
    assert.equal(renderMarkdown("snake_case_name and 2*3*4"), "<p>snake_case_name and 2*3*4</p>");
    assert.equal(
      renderMarkdown("see [the docs](https://x.test/a_b?c=1&d=2)"),
      '<p>see <a href="https://x.test/a_b?c=1&amp;d=2" target="_blank" rel="noopener noreferrer nofollow">the docs</a></p>',
    );
    assert.equal(renderMarkdown("[local](/etc/passwd)"), "<p>[local](/etc/passwd)</p>");
    assert.equal(renderMarkdown("```js\nif (a < b) { x(); }\n\n**not bold**\n```"), '<pre><code class="language-js">if (a &lt; b) { x(); }\n\n**not bold**</code></pre>');
    assert.equal(renderMarkdown("```\nunterminated"), "<pre><code>unterminated</code></pre>", "mid-stream fence");
    assert.equal(renderMarkdown("- one\n- two\n  - nested\n- three"), "<ul><li>one</li><li>two<ul><li>nested</li></ul></li><li>three</li></ul>");
    assert.equal(renderMarkdown("3. c\n4. d"), '<ol start="3"><li>c</li><li>d</li></ol>');
    assert.equal(renderMarkdown("## Title\nline 1\nline 2\n\npara 2"), "<h4>Title</h4><p>line 1<br>line 2</p><p>para 2</p>");
    assert.equal(renderMarkdown("> quoted **x**"), "<blockquote><p>quoted <strong>x</strong></p></blockquote>");
    assert.equal(renderMarkdown("[`code` link](https://x.test)"), '<p><a href="https://x.test" target="_blank" rel="noopener noreferrer nofollow"><code>code</code> link</a></p>');
  });
});

describe("SSE parser", () => {
  const body = 'data: {"a":1}\r\n\r\n: keep-alive\r\n\r\ndata: {"b":"x\\ny"}\n\ndata: line1\rdata: line2\r\rdata: [DONE]\n\n';

  test("events split at every possible point, with \\n, \\r\\n and \\r line endings", () => {
    const want = ['{"a":1}', '{"b":"x\\ny"}', "line1\nline2", "[DONE]"];
    for (let cut = 0; cut <= body.length; cut++) {
      const p = new SseParser();
      const got = [...p.push(body.slice(0, cut)), ...p.push(body.slice(cut)), ...p.end()];
      assert.deepEqual(got, want, `cut at ${cut}`);
    }
    const p = new SseParser();
    const got = [...body].flatMap((c) => p.push(c)); // one character per read
    assert.deepEqual([...got, ...p.end()], want);
  });

  test("a last event without its blank line is delivered at the end", () => {
    const p = new SseParser();
    assert.deepEqual(p.push("data: x\n"), []);
    assert.deepEqual(p.end(), ["x"]);
  });
});

// ---------------------------------------------------------------------------
// The page in Chromium.

let mock, w, browser;
const m = (name, extra) => mockModel(mock, name, extra);

function config() {
  return {
    default_ensemble: "council",
    ensembles: {
      // Not listed first: the page must preselect the default ensemble, not the first one.
      allfail: { panel: [m("f1", { max_retries: 0 }), m("f2", { max_retries: 0 })], summary: m("sum") },
      council: { description: "Two models answer, one synthesizes", panel: [m("alpha"), m("beta")], summary: m("sum") },
      xss: { panel: [m("x-p"), m("x-bad", { max_retries: 0 })], summary: m("x-s") },
      slow: { panel: [m("slow-p")], summary: m("sum"), keep_alive_ms: 300 },
      live: { panel: [m("live-p"), m("live-q")], summary: m("sum") },
    },
  };
}

before(async () => {
  mock = await startMockUpstream();
  w = await startWorker({ config: config(), assets: true, bindings: { N1_ALLOW_ANONYMOUS: "true" } });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
  mkdirSync(ARTIFACTS, { recursive: true });
});
after(async () => {
  await browser?.close();
  await w?.close();
  await mock?.close();
});
beforeEach(() => mock.reset());

/** A fresh browser context (own localStorage) with the page loaded and the ensembles listed. */
async function openPage(t, { url = w.url, viewport = DESKTOP, waitForEnsembles = true } = {}) {
  const context = await browser.newContext({ viewport });
  t.after(() => context.close());
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(String(e)));
  page.on("console", (msg) => msg.type() === "error" && page.errors.push(msg.text()));
  page.apiRequests = [];
  page.on("request", (r) => r.url().includes("/v1/") && page.apiRequests.push({ url: r.url(), headers: r.headers(), body: r.postData() }));
  await page.goto(`${url}/`);
  if (waitForEnsembles) await page.waitForSelector("#ensemble option[value=council]", { state: "attached" });
  return page;
}

async function send(page, text) {
  await page.fill("#input", text);
  await page.press("#input", "Enter");
}

/** Waits until the request in flight has finished (the page is no longer busy). */
async function settled(page) {
  await page.waitForFunction(() => !document.body.classList.contains("busy"), null, { timeout: 15000 });
}

const lastTurn = ".turn:last-of-type";
const text = (page, sel) => page.textContent(sel);

test("GET / serves the page (with its CSP); /v1/* and unknown paths still reach the worker", async () => {
  const r = await fetch(`${w.url}/`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /text\/html/);
  assert.match(r.headers.get("content-security-policy"), /script-src 'self'/);
  assert.match(await r.text(), /<title>N-1 chat<\/title>/);
  for (const f of ["/app.js", "/markdown.js", "/sse.js", "/style.css", "/favicon.svg"]) {
    assert.equal((await fetch(`${w.url}${f}`)).status, 200, f);
  }
  const models = await fetch(`${w.url}/v1/models`);
  assert.equal(models.status, 200);
  assert.ok(models.headers.get("x-request-id"), "answered by the worker");
  assert.deepEqual((await models.json()).data.map((d) => d.id).sort(), ["allfail", "council", "live", "slow", "xss"]);
  for (const p of ["/v1/app.js", "/v1/index.html", "/nope", "/_headers"]) {
    const r = await fetch(`${w.url}${p}`);
    assert.equal(r.status, 404, p);
    assert.equal((await r.json()).error.code, "not_found", `${p} is the worker's JSON 404`);
  }
});

test("a two-turn chat: panel answers and the synthesis stream in, usage shown, history sent", { timeout: 60000 }, async (t) => {
  const synthesis = "The sky is **blue** because air scatters short wavelengths more.\n\n- Rayleigh scattering\n- sunlight is white";
  mock.set("alpha", { text: "**Alpha** says: Rayleigh scattering.", delayMs: 200 });
  mock.set("beta", { text: "Beta says: `blue` light bends more.", delayMs: 1200 });
  mock.set("sum", { text: synthesis, chunks: 12, chunkDelayMs: 120 });
  const page = await openPage(t);
  assert.equal(await page.$eval("#ensemble", (e) => e.value), "council", "the default ensemble is preselected");
  assert.match(await text(page, "#ensemble-info"), /panel: alpha, beta → summary: sum/);

  await send(page, "Why is the sky blue?");
  assert.equal(await text(page, `${lastTurn} .bubble`), "Why is the sky blue?");

  // Panel answers arrive one by one: alpha is shown while beta is still working.
  const alpha = `${lastTurn} .card:nth-child(1)`;
  const beta = `${lastTurn} .card:nth-child(2)`;
  await page.waitForSelector(`${alpha}[data-status=ok]`);
  assert.equal(await page.getAttribute(beta, "data-status"), "pending");
  assert.match(await text(page, `${alpha} .model`), /alpha/);
  assert.match(await text(page, `${alpha} .answer`), /Alpha says: Rayleigh scattering\./);
  assert.equal(await text(page, `${alpha} .answer strong`), "Alpha", "markdown rendered in panel answers");
  assert.match(await text(page, `${alpha} .card-meta`), /\d+ ms · 15 tokens/);
  await page.waitForSelector(`${beta}[data-status=ok]`);
  assert.match(await text(page, `${beta} .answer`), /Beta says: blue light bends more\./);
  assert.match(await text(page, `${lastTurn} .panel .status`), /2\/2 answered/);

  // The synthesis streams: part of it is on screen before the rest has arrived.
  const answer = `${lastTurn} .synthesis .answer`;
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.includes("The sky"), answer);
  assert.doesNotMatch(await text(page, answer), /sunlight is white/, "not all at once");
  assert.match(await text(page, `${lastTurn} .synthesis .status`), /writing/);
  await settled(page);
  assert.match(await text(page, `${lastTurn} .synthesis .head`), /^Synthesis sum done · \d+ ms$/);
  assert.match(await text(page, answer), /The sky is blue because air scatters short wavelengths more\.\s*Rayleigh scattering\s*sunlight is white/);
  assert.equal(await page.locator(`${answer} li`).count(), 2);
  assert.equal(await text(page, `${answer} strong`), "blue");
  // Usage: three calls of the mock's 10 + 5 tokens.
  assert.match(await text(page, `${lastTurn} .meta`), /Usage \(panel \+ summary\): 30 prompt \+ 15 completion = 45 tokens/);
  assert.equal(await page.isVisible(`${lastTurn} .error`), false);

  // What the page sent: streaming, usage, progress; no Authorization header without a key.
  const first = page.apiRequests.find((r) => r.url.endsWith("/v1/chat/completions"));
  assert.deepEqual(JSON.parse(first.body), {
    messages: [{ role: "user", content: "Why is the sky blue?" }],
    stream: true,
    stream_options: { include_usage: true },
    n1: { progress: true },
    model: "council",
  });
  assert.ok(page.apiRequests.every((r) => !("authorization" in r.headers)), "no key, no Authorization header");

  await page.screenshot({ path: `${ARTIFACTS}chat-page.png`, fullPage: true });

  // Second turn: the history (user, assistant, user) goes to the panel and the summary.
  mock.reset();
  mock.set("sum", { text: "Sunsets are red because the light crosses more air." });
  await send(page, "And sunsets?");
  await settled(page);
  assert.equal(await page.locator(".turn").count(), 2);
  assert.match(await text(page, `${lastTurn} .synthesis .answer`), /Sunsets are red/);
  const history = [
    { role: "user", content: "Why is the sky blue?" },
    { role: "assistant", content: synthesis },
    { role: "user", content: "And sunsets?" },
  ];
  for (const model of ["alpha", "beta"]) assert.deepEqual(mock.requestsFor(model)[0].body.messages, history, model);
  const toSummary = mock.requestsFor("sum")[0].body.messages;
  assert.equal(toSummary[0].role, "system");
  assert.deepEqual(toSummary.slice(1), history);
  assert.deepEqual(page.errors, []);
});

test("a panel member's text grows in its card while it answers, before it is done", { timeout: 60000 }, async (t) => {
  const words = "one two three four five six seven eight nine ten";
  mock.set("live-p", { text: words, chunks: 10, chunkDelayMs: 250 });
  mock.set("live-q", { text: "quick answer" });
  mock.set("sum", { text: "done." });
  const page = await openPage(t);
  await page.selectOption("#ensemble", "live");
  await send(page, "count");
  const card = `${lastTurn} .card:nth-child(1)`;
  // Part of the answer is on screen while the member is still answering.
  await page.waitForFunction((sel) => /one two/.test(document.querySelector(sel)?.textContent ?? ""), `${card} .answer`);
  assert.equal(await page.getAttribute(card, "data-status"), "pending");
  assert.match(await text(page, `${card} .badge`), /answering/);
  assert.doesNotMatch(await text(page, `${card} .answer`), /ten/, "not all at once");
  await page.screenshot({ path: `${ARTIFACTS}chat-page-live-panel.png`, fullPage: true });
  await page.waitForSelector(`${card}[data-status=ok]`, { timeout: 15000 });
  assert.equal((await text(page, `${card} .answer`)).trim(), words);
  assert.match(await text(page, `${card} .card-meta`), /first token \d+ ms/);
  await settled(page);
  assert.deepEqual(page.errors, []);
});

test("phone-sized screen: the exchange fits the width", { timeout: 60000 }, async (t) => {
  mock.set("alpha", { text: "A longer panel answer, so that the card has a few lines of text on a narrow screen: **bold**, `code`, and a list:\n\n1. first\n2. second" });
  mock.set("beta", { status: 429, errorBody: { error: { message: "Rate limit reached for requests" } }, headers: { "retry-after": "0" } });
  mock.set("sum", { text: "Here is the synthesis.\n\n```\nconst x = 1; // a code block that is wider than the phone screen, so it must scroll on its own\n```\n\nDone." });
  const page = await openPage(t, { viewport: PHONE });
  await page.selectOption("#ensemble", "council");
  await send(page, "Show me on a phone");
  await settled(page);
  await page.waitForSelector(`${lastTurn} .card[data-status=error]`);
  assert.match(await text(page, `${lastTurn} .card[data-status=error] .answer`), /HTTP 429: .*Rate limit reached/);
  assert.match(await text(page, `${lastTurn} .meta`), /degraded: 1\/2 panel answers/);
  const widths = await page.evaluate(() => ({ page: document.scrollingElement.scrollWidth, view: innerWidth }));
  assert.ok(widths.page <= widths.view, `no horizontal scrolling (${widths.page} > ${widths.view})`);
  await page.screenshot({ path: `${ARTIFACTS}chat-page-phone.png`, fullPage: true });
  assert.deepEqual(page.errors, []);
});

test("model output with <script> and <img onerror> is shown as text and never runs", { timeout: 60000 }, async (t) => {
  const evil = `Look: ${XSS_SCRIPT} and ${XSS_IMG} and [click](javascript:window.__pwned=1) **still markdown**`;
  mock.set("x-p", { text: evil });
  mock.set("x-bad", { status: 400, errorBody: { error: { message: XSS_IMG } } });
  mock.set("x-s", { text: evil, chunks: ["Look: <scr", "ipt>window.__pwned=1</sc", `ript> and <img src=x `, `onerror="window.__pwned=1"> and [click](javascript:window.__pwned=1) **still markdown**`] });
  const page = await openPage(t);
  await page.selectOption("#ensemble", "xss");
  await send(page, "say something nasty");
  await settled(page);
  await page.waitForTimeout(300); // give any injected handler a chance to fire
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  const synth = await text(page, `${lastTurn} .synthesis .answer`);
  assert.ok(synth.includes(XSS_SCRIPT) && synth.includes(XSS_IMG), `shown literally: ${synth}`);
  assert.ok((await text(page, `${lastTurn} .card:nth-child(1) .answer`)).includes(XSS_IMG));
  assert.match(await text(page, `${lastTurn} .card:nth-child(2) .answer`), /onerror/, "an error reason is text too");
  assert.equal(await text(page, `${lastTurn} .synthesis strong`), "still markdown");
  const dom = await page.evaluate(() => ({
    scripts: [...document.scripts].map((s) => s.getAttribute("src")),
    imgs: document.querySelectorAll("main img").length,
    handlers: [...document.querySelectorAll("main *")].filter((e) => [...e.attributes].some((a) => a.name.startsWith("on"))).length,
    badLinks: [...document.querySelectorAll("main a")].filter((a) => !/^https?:/.test(a.getAttribute("href"))).length,
  }));
  assert.deepEqual(dom, { scripts: ["/app.js"], imgs: 0, handlers: 0, badLinks: 0 });
  assert.deepEqual(page.errors, []);
});

test("every panel model failing: the stream's error event is shown, and the turn is not kept", { timeout: 60000 }, async (t) => {
  mock.set("f1", { status: 500 });
  mock.set("f2", { status: 503, errorBody: { error: { message: "overloaded" } } });
  const page = await openPage(t);
  await page.selectOption("#ensemble", "allfail");
  await send(page, "will fail");
  await settled(page);
  const err = await text(page, `${lastTurn} .error`);
  assert.match(err, /Stream error · panel_failed/);
  assert.match(err, /Too few panel models answered \(0, 1 needed\)/);
  assert.match(err, /f1: HTTP 500/);
  assert.match(err, /f2: HTTP 503 · overloaded/);
  assert.match(err, /not kept in the conversation/);
  assert.equal(await page.locator(`${lastTurn} .card[data-status=error]`).count(), 2);
  assert.equal(await page.inputValue("#input"), "will fail", "the message is back in the box for a retry");

  // The failed turn is not part of the history of the next one.
  await page.selectOption("#ensemble", "council");
  await send(page, "second try");
  await settled(page);
  assert.match(await text(page, `${lastTurn} .synthesis .status`), /^done/);
  assert.deepEqual(mock.requestsFor("alpha")[0].body.messages, [{ role: "user", content: "second try" }]);
});

test("HTTP errors (429, 502) are shown with their message and code", { timeout: 60000 }, async (t) => {
  const page = await openPage(t);
  const errors = [
    [429, { "retry-after": "7" }, { message: "Rate limit exceeded for this key.", type: "rate_limit_error", code: "rate_limit_exceeded" }, /HTTP 429 · rate_limit_exceeded\s*Rate limit exceeded for this key\.[\s\S]*try again in 7 s/],
    [
      502,
      {},
      { message: "Too few panel models answered (0, 1 needed).", type: "upstream_error", code: "panel_failed", failures: [{ model: "m1", status: 401, kind: "error", reason: "bad upstream key" }] },
      /HTTP 502 · panel_failed\s*Too few panel models answered[\s\S]*m1: HTTP 401 · bad upstream key/,
    ],
  ];
  for (const [status, headers, error, want] of errors) {
    await page.route("**/v1/chat/completions", (route) =>
      route.fulfill({ status, headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ error }) }),
    );
    await send(page, `error ${status}`);
    await settled(page);
    assert.match(await text(page, `${lastTurn} .error`), want);
    await page.unroute("**/v1/chat/completions");
  }
});

test("Stop aborts the request in flight", { timeout: 60000 }, async (t) => {
  mock.set("slow-p", { delayMs: 20000 });
  const page = await openPage(t);
  await page.selectOption("#ensemble", "slow");
  await send(page, "take your time");
  await page.waitForSelector(`${lastTurn} .card[data-status=pending]`);
  await page.click("#stop");
  await settled(page);
  assert.match(await text(page, `${lastTurn} .error`), /Stopped/);
  assert.equal(await page.isVisible("#send"), true);
  // The worker notices the disconnect at its next keep-alive and aborts the upstream call.
  await mock.waitFor(() => mock.requestsFor("slow-p")[0]?.closedEarly, 5000);
});

// Needs client access keys (N1_API_KEYS, issue 5): with them, a wrong key is a 401.
test("a wrong access key: the 401 is shown; the right key works and is sent as a bearer token", { timeout: 60000 }, async (t) => {
  const keyed = await startWorker({ config: config(), assets: true, bindings: { N1_API_KEYS: "right-key", N1_ALLOW_ANONYMOUS: undefined } });
  t.after(() => keyed.close());
  const probe = await fetch(`${keyed.url}/v1/models`, { headers: { authorization: "Bearer wrong-key" } });
  assert.equal(probe.status, 401, "the worker enforces N1_API_KEYS (client access keys, issue 5)");
  const page = await openPage(t, { url: keyed.url, waitForEnsembles: false });
  await page.fill("#key", "wrong-key");
  await page.press("#key", "Tab"); // change event: stored, ensembles reloaded
  await page.waitForSelector("#models-error:not([hidden])");
  assert.match(await text(page, "#models-error"), /HTTP 401 · invalid_api_key[\s\S]*Check the access key/);
  await send(page, "hello?");
  await settled(page);
  assert.match(await text(page, `${lastTurn} .error`), /HTTP 401 · invalid_api_key/);
  assert.equal(page.apiRequests.at(-1).headers.authorization, "Bearer wrong-key");

  await page.fill("#key", "right-key");
  await page.press("#key", "Tab");
  await page.waitForSelector("#ensemble option[value=council]", { state: "attached" });
  assert.equal(await page.isVisible("#models-error"), false);
  await page.reload(); // the key is kept in localStorage
  assert.equal(await page.inputValue("#key"), "right-key");
  await page.waitForSelector("#ensemble option[value=council]", { state: "attached" });
  await send(page, "hello again");
  await settled(page);
  assert.match(await text(page, `${lastTurn} .synthesis .status`), /^done/);
  assert.equal(page.apiRequests.at(-1).headers.authorization, "Bearer right-key");
});

test("each answer shows its cost (and each panel model's); the key's remaining budget is shown", { timeout: 60000 }, async (t) => {
  const m = (name, price) => mockModel(mock, name, price ? { price } : {});
  const cfg = {
    default_ensemble: "council",
    ensembles: {
      council: { panel: [m("alpha", { input: 1, output: 2 }), m("beta", { input: 3, output: 4 })], summary: m("sum", { input: 5, output: 6 }) },
      unpriced: { panel: [m("alpha")], summary: m("sum", { input: 5, output: 6 }) },
    },
  };
  const keys = JSON.stringify([{ key: "budget-key-0001", name: "page", budget: { usd_per_day: 2, tokens_per_day: 100000 } }, { key: "plain-key-0001", name: "plain" }]);
  const keyed = await startWorker({ config: cfg, assets: true, bindings: { N1_API_KEYS: keys, N1_ALLOW_ANONYMOUS: undefined } });
  t.after(() => keyed.close());
  const page = await openPage(t, { url: keyed.url, waitForEnsembles: false });
  await page.fill("#key", "budget-key-0001");
  await page.press("#key", "Tab");
  await page.waitForSelector("#ensemble option[value=council]", { state: "attached" });
  // Before any answer: the whole budget is left.
  await page.waitForSelector("#budget:not([hidden])");
  assert.match(await text(page, "#budget"), /Today: \$2 left of \$2 \(resets .+\) · 100000 of 100000 tokens left today/);

  await send(page, "What does this cost?");
  await settled(page);
  // 10 prompt + 5 completion tokens per call: alpha $0.00002, beta $0.00005, sum $0.00008.
  assert.match(await text(page, `${lastTurn} .card:nth-child(1) .card-meta`), /15 tokens · \$0\.00002$/);
  assert.match(await text(page, `${lastTurn} .card:nth-child(2) .card-meta`), /15 tokens · \$0\.00005$/);
  assert.match(await text(page, `${lastTurn} .meta .cost`), /^Cost: \$0\.00015$/);
  await page.waitForFunction(() => /99955 of 100000 tokens/.test(document.querySelector("#budget").textContent));
  assert.match(await text(page, "#budget"), /Today: \$1\.9998 left of \$2/);

  // A model without a price (a USD budget cannot be enforced on it: a key without a budget).
  await page.fill("#key", "plain-key-0001");
  await page.press("#key", "Tab");
  await page.waitForFunction(() => /^Budget · Today: \$0 spent$/.test(document.querySelector("#budget").textContent));
  await page.selectOption("#ensemble", "unpriced");
  await send(page, "And this one?");
  await settled(page);
  assert.match(await text(page, `${lastTurn} .card:nth-child(1) .card-meta`), /cost unknown$/);
  assert.match(await text(page, `${lastTurn} .meta .cost`), /^Cost: unknown \(a model has no price\)$/);
  await page.waitForFunction(() => /^Budget · Today: \$0\.00008 spent$/.test(document.querySelector("#budget").textContent));
  await page.screenshot({ path: `${ARTIFACTS}chat-page-costs.png`, fullPage: true });
  // Only the ensembles' 401 before the key was entered.
  assert.deepEqual(page.errors.filter((e) => !/status of 401/.test(e)), []);
});
