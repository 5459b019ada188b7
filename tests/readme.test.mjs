// The README's commands and examples, taken from README.md and run exactly as
// written against `npm run dev` (its run command, on the default port 8787 the
// examples name), with an ensemble named `council` as in the README, pointing at
// the mock upstream. Runs in a scratch copy of the project (its own .dev.vars
// and local KV; tests/helpers/dev-server.mjs).
// Not run here: `npm test` (it is what runs this file; CI runs it), and what needs
// a Cloudflare account or the network: `npx wrangler login`, `wrangler secret put`,
// `kv key put … --remote`, `npm run deploy`, `N1_DEV_AI=1 npm run dev`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { startMockUpstream } from "./helpers/mock-upstream.mjs";
import { mockModel, parseSse } from "./helpers/worker.mjs";
import { ROOT, scratchProject, startDev, varsFile, sh, portInUse, venvPython } from "./helpers/dev-server.mjs";

const README = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
const PORT = 8787;
const ANSWER = "The sky scatters blue light most (Rayleigh scattering).";
const USAGE_KEY = "k-readme-7e1f00aa";

/** The README's fenced code blocks in `lang`. */
function fenced(lang) {
  return [...README.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].filter((m) => m[1] === lang).map((m) => m[2]);
}
function one(list, what) {
  assert.equal(list.length, 1, `README: expected exactly one ${what}, found ${list.length}`);
  return list[0];
}

// The README's run command (the line of its Quick start block), e.g. "npm run dev   # runs …".
const quickStart = one(fenced("sh").filter((b) => /^npm run dev\b/m.test(b) && /^npm test\b/m.test(b)), "Quick start block");
const RUN = quickStart.split("\n").find((l) => l.startsWith("npm run dev"));
const CURL = one(fenced("sh").filter((b) => b.includes("curl ") && !b.includes("/v1/n1/usage")), "block of curl examples");
const USAGE = one(fenced("sh").filter((b) => b.includes("/v1/n1/usage")), "usage example");
const JS = one(fenced("js").filter((b) => b.includes("chat.completions")), "JavaScript example of chat completions");
const PY = one(fenced("python").filter((b) => b.includes("chat.completions")), "Python example of chat completions");
const JS_RESPONSES = one(fenced("js").filter((b) => b.includes("responses.create")), "JavaScript example of the Responses API");
const PY_RESPONSES = one(fenced("python").filter((b) => b.includes("responses.create")), "Python example of the Responses API");
const CODEX = one(fenced("toml").filter((b) => b.includes("wire_api")), "Codex CLI configuration");
const KV_PUT = one([...README.matchAll(/`(npx wrangler kv key put [^`]*--local)`/g)].map((m) => m[1]), "local KV command");

let mock, project, dev;
before(async () => {
  if (await portInUse(PORT)) {
    throw new Error(`port ${PORT} is in use (another \`npm run dev\`?): the README's examples name it, so this test needs it; stop what listens there and run again`);
  }
  mock = await startMockUpstream();
  project = scratchProject();
  const m = (name) => mockModel(mock, name);
  fs.writeFileSync(
    path.join(project.dir, ".dev.vars"),
    varsFile({
      N1_ALLOW_ANONYMOUS: "true",
      N1_ALLOW_INSECURE_UPSTREAMS: "true",
      N1_CONFIG: { default_ensemble: "council", ensembles: { council: { panel: [m("council-a"), m("council-b")], summary: m("council-s") } } },
    }),
  );
  mock.set("council-s", { text: ANSWER });
  dev = await startDev({ dir: project.dir, command: RUN, port: PORT });
});
after(async () => {
  try {
    await dev?.stop();
  } finally {
    await mock?.close();
    project?.remove();
  }
});

/** Writes `text` into the scratch project as `name` and runs `command` there. */
async function run(command, files = {}) {
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(project.dir, name), text);
  const r = await sh(project.dir, command);
  assert.equal(r.code, 0, `\`${command}\` failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

test("the run command serves the API and the chat page on 127.0.0.1:8787", async () => {
  assert.match(RUN, /^npm run dev\s+#.*http:\/\/127\.0\.0\.1:8787/);
  const page = await fetch(`http://127.0.0.1:${PORT}/`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<html/i);
});

test("the curl examples: a completion, then a stream with usage and [DONE]", async () => {
  mock.reset();
  mock.set("council-s", { text: ANSWER });
  const out = await run(CURL);
  const split = out.indexOf("data: ");
  assert.ok(split > 0, out);
  const completion = JSON.parse(out.slice(0, split));
  assert.equal(completion.object, "chat.completion");
  assert.equal(completion.model, "council");
  assert.equal(completion.choices[0].message.content, ANSWER);
  const { events } = parseSse(out.slice(split));
  assert.equal(events.at(-1), "[DONE]");
  const chunks = events.slice(0, -1);
  assert.equal(chunks.map((e) => e.choices[0]?.delta?.content ?? "").join(""), ANSWER);
  assert.equal(chunks.at(-1).usage.total_tokens, 45, JSON.stringify(chunks.at(-1))); // panel 2 × 15 + summary 15
  // Each example asked the panel and the summary model.
  assert.equal(mock.requestsFor("council-a").length, 2);
  assert.equal(mock.requestsFor("council-s").length, 2);
  assert.ok(mock.requestsFor("council-a").every((r) => r.body.messages.at(-1).content === "Why is the sky blue?"));
});

test("the JavaScript example (openai package): the answer, usage and n1, then the streamed answer", async () => {
  const out = await run("node readme-example.mjs", { "readme-example.mjs": JS });
  assert.ok(out.startsWith(`${ANSWER} {`), out);
  assert.match(out, /total_tokens: 45/);
  assert.match(out, /ensemble: 'council'/);
  assert.ok(out.trimEnd().endsWith(ANSWER), out);
});

test("the Python example (openai package, in the tools' virtualenv)", async () => {
  const python = venvPython();
  assert.ok(fs.existsSync(python), `${python} is missing: scripts/setup.sh --tests installs it`);
  const out = await run(`"${python}" readme_example.py`, { "readme_example.py": PY });
  assert.equal(out.trim(), ANSWER);
});

test("the Responses API examples (openai package, JavaScript and Python): the answer, then the streamed answer", async () => {
  mock.reset();
  mock.set("council-s", { text: ANSWER });
  const out = await run("node readme-responses.mjs", { "readme-responses.mjs": JS_RESPONSES });
  assert.ok(out.startsWith(`${ANSWER} 45 council`), out);
  assert.ok(out.trimEnd().endsWith(`${ANSWER} completed`), out);
  const s = mock.requestsFor("council-s")[0].body;
  assert.deepEqual(s.messages.slice(1), [{ role: "system", content: "Be brief." }, { role: "user", content: "Why is the sky blue?" }]);
  const py = await run(`"${venvPython()}" readme_responses.py`, { "readme_responses.py": PY_RESPONSES });
  assert.equal(py.trim(), ANSWER);
});

test("the Codex CLI configuration: a Responses provider at the worker's /v1, and a Codex-shaped request to that base URL answers", async () => {
  const get = (k) => CODEX.match(new RegExp(`^${k} = "([^"]*)"`, "m"))?.[1];
  assert.equal(get("wire_api"), "responses");
  assert.equal(get("model_provider"), "n1");
  assert.match(get("base_url"), /\/v1$/);
  // The same request to the local worker, as Codex would make it with this provider.
  const base = get("base_url").replace(/^https:\/\/[^/]+/, `http://127.0.0.1:${PORT}`);
  mock.reset();
  mock.set("council-s", { text: ANSWER });
  const r = await fetch(`${base}/responses`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer unused" },
    body: JSON.stringify({
      model: get("model"),
      instructions: "You are Codex.",
      input: [{ type: "message", role: "user", content: [{ type: "input_text", text: "hi" }] }],
      tools: [{ type: "function", name: "shell", parameters: { type: "object" } }, { type: "web_search", external_web_access: false }],
      stream: true,
      store: false,
    }),
  });
  const { events } = parseSse(await r.text());
  const done = events.find((e) => e.type === "response.completed");
  assert.equal(done.response.output[0].content[0].text, ANSWER);
  assert.deepEqual(done.response.n1.ignored_tools, ["web_search"]);
});

test("the local KV command: the config put into local KV is served by the running `npm run dev`", async () => {
  const m = (name) => mockModel(mock, name);
  mock.set("kv-s", { text: "answer from the KV config" });
  const config = { ensembles: { council: { panel: [m("kv-a")], summary: m("kv-s") } } };
  await run(KV_PUT, { "config.json": JSON.stringify(config, null, 2) });
  // The worker reads the config again in the background once its copy is 5 s old (src/edge/env.rs TTL_MS).
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await fetch(`http://127.0.0.1:${PORT}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "council", messages: [{ role: "user", content: "hi" }] }),
    });
    const body = await r.json();
    assert.equal(r.status, 200, JSON.stringify(body));
    if (body.choices[0].message.content === "answer from the KV config") break;
    assert.ok(Date.now() < deadline, "the KV config was not served within 30 s");
    await new Promise((res) => setTimeout(res, 500));
  }
});

// The Anthropic Messages API's examples and Claude Code's configuration.
const JS_MESSAGES = one(fenced("js").filter((b) => b.includes("messages.create")), "JavaScript example of the Messages API");
const PY_MESSAGES = one(fenced("python").filter((b) => b.includes("messages.create")), "Python example of the Messages API");
const CLAUDE_CODE = one(fenced("sh").filter((b) => b.includes("ANTHROPIC_BASE_URL")), "Claude Code configuration");

// These run after the local KV test, whose config (a `council` of its own) may still be served.
const summaries = () => mock.requests.filter((q) => ["council-s", "kv-s"].includes(q.model));
function answerAlways() {
  mock.reset();
  for (const s of ["council-s", "kv-s"]) mock.set(s, { text: ANSWER });
}

test("the Messages API examples (@anthropic-ai/sdk and the anthropic Python package): the answer, then the streamed answer", async () => {
  answerAlways();
  const out = await run("node readme-messages.mjs", { "readme-messages.mjs": JS_MESSAGES });
  // Each of the two calls asked the panel and the summary model, 10 tokens in and 5 out each.
  const calls = mock.requests.length / 2;
  assert.ok(out.startsWith(`${ANSWER} {`), out);
  assert.match(out, new RegExp(`input_tokens: ${10 * calls},`));
  assert.match(out, new RegExp(`output_tokens: ${5 * calls}\n`));
  assert.match(out, / council\n/);
  assert.ok(out.trimEnd().endsWith(`${ANSWER} end_turn`), out);
  const py = await run(`"${venvPython()}" readme_messages.py`, { "readme_messages.py": PY_MESSAGES });
  assert.equal(py.trim(), `${ANSWER}\n${ANSWER}`);
  assert.equal(summaries().length, 4);
});

test("the Claude Code configuration: the base URL without /v1, ensembles as models, and a Claude Code-shaped request to it answers", async () => {
  const env = Object.fromEntries([...CLAUDE_CODE.matchAll(/^export (\w+)=(\S+)/gm)].map((m) => [m[1], m[2]]));
  assert.match(env.ANTHROPIC_BASE_URL, /^https:\/\/[^/]+$/, "Claude Code adds /v1/messages itself");
  for (const k of ["ANTHROPIC_MODEL", "ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL", "ANTHROPIC_DEFAULT_HAIKU_MODEL", "CLAUDE_CODE_SUBAGENT_MODEL"]) {
    assert.equal(env[k], "council", `${k} names an ensemble`);
  }
  assert.ok(env.ANTHROPIC_AUTH_TOKEN);
  answerAlways();
  const base = env.ANTHROPIC_BASE_URL.replace(/^https:\/\/[^/]+/, `http://127.0.0.1:${PORT}`);
  const r = await fetch(`${base}/v1/messages`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${env.ANTHROPIC_AUTH_TOKEN}`,
      "anthropic-version": "2023-06-01",
      "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
    },
    body: JSON.stringify({
      model: env.ANTHROPIC_MODEL,
      max_tokens: 32000,
      stream: true,
      metadata: { user_id: "user_x_account__session_y" },
      system: [{ type: "text", text: "You are Claude Code.", cache_control: { type: "ephemeral" } }],
      messages: [{ role: "user", content: [{ type: "text", text: "hi", cache_control: { type: "ephemeral" } }] }],
      tools: [{ name: "Bash", input_schema: { type: "object", properties: { command: { type: "string" } } } }, { type: "web_search_20250305", name: "web_search" }],
    }),
  });
  assert.equal(r.status, 200);
  const text = await r.text();
  const deltas = [...text.matchAll(/"text_delta","text":("(?:[^"\\]|\\.)*")/g)].map((m) => JSON.parse(m[1])).join("");
  assert.equal(deltas, ANSWER);
  assert.match(text, /event: message_stop\n/);
  assert.deepEqual(summaries()[0].body.tools.map((t) => t.function.name), ["Bash"]);
});

// Last: it gives the running `npm run dev` a client key (the SDK examples above send
// "unused" as their key, which only works while no keys are configured).
test("the usage example: what the key spent today and this month (wrangler dev runs the Durable Object)", async () => {
  const vars = path.join(project.dir, ".dev.vars");
  const original = fs.readFileSync(vars, "utf8");
  fs.writeFileSync(vars, `${original}N1_API_KEYS='${JSON.stringify([{ key: USAGE_KEY, name: "readme", budget: { tokens_per_day: 100000 } }])}'\n`);
  const auth = { authorization: `Bearer ${USAGE_KEY}` };
  try {
    // `npm run dev` reloads on the changed .dev.vars: the key is known once /v1/n1/usage answers it.
    const deadline = Date.now() + 60_000;
    while ((await fetch(`http://127.0.0.1:${PORT}/v1/n1/usage`, { headers: auth }).catch(() => ({ status: 0 }))).status !== 200) {
      assert.ok(Date.now() < deadline, "the worker did not pick up N1_API_KEYS within 60 s");
      await new Promise((r) => setTimeout(r, 300));
    }
    const r = await fetch(`http://127.0.0.1:${PORT}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", ...auth },
      body: JSON.stringify({ model: "council", max_tokens: 50, messages: [{ role: "user", content: "hi" }] }),
    });
    assert.equal(r.status, 200, await r.clone().text());
    let u;
    for (let i = 0; i < 50 && !(u?.day.requests >= 1); i++) {
      const out = await sh(project.dir, USAGE, { env: { N1_KEY: USAGE_KEY } });
      assert.equal(out.code, 0, out.stderr);
      u = JSON.parse(out.stdout);
    }
    assert.equal(u.key, "readme");
    assert.equal(u.day.requests, 1);
    assert.equal(u.day.limit_tokens, 100000);
    assert.ok(u.day.input_tokens > 0 && u.day.output_tokens > 0, JSON.stringify(u));
    assert.match(u.month.resets_at, /^\d{4}-\d\d-01T00:00:00Z$/);
  } finally {
    fs.writeFileSync(vars, original);
  }
});

test("every file and directory the README names exists (paths in backticks and the module map)", () => {
  const named = [...README.matchAll(/`((?:src|tests|bench|scripts|worker|public|\.ci)\/[^`\s]*)`/g)].map((m) => m[1]);
  const map = one(fenced("").filter((b) => b.startsWith("src/lib.rs")), "module map (the block that starts with src/lib.rs)");
  let parent = "";
  for (const line of map.split("\n")) {
    // `path   what it is` at the left, `  name, name   what` under a directory; deeper lines continue a description.
    const m = line.match(/^( {0,2})(\S+(?:, \S+)*)(?: {2,}|$)/);
    if (!m) continue;
    if (m[1] === "") {
      named.push(m[2]);
      if (m[2].endsWith("/")) parent = m[2];
    } else {
      for (const name of m[2].split(", ")) if (!name.includes("*")) named.push(parent + name);
    }
  }
  assert.ok(named.length > 30, `found ${named.length} paths`);
  const missing = named.filter((p) => !fs.existsSync(path.join(ROOT, p)));
  assert.deepEqual(missing, [], "paths named in README.md that do not exist");
});
