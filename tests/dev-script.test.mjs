// `npm run dev` and `wrangler deploy --dry-run` as users run them (scripts/dev.sh,
// scripts/dev.mjs), in a scratch copy of the project (tests/helpers/dev-server.mjs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startMockUpstream } from "./helpers/mock-upstream.mjs";
import { mockModel, postChat } from "./helpers/worker.mjs";
import { ROOT, scratchProject, startDev, freePort, varsFile, sh } from "./helpers/dev-server.mjs";
import { apiRoutes } from "../scripts/dev-worker.mjs";

let mock, project;
before(async () => {
  mock = await startMockUpstream();
  project = scratchProject();
});
after(async () => {
  await mock?.close();
  project?.remove();
});

const vars = (tag) =>
  varsFile({
    N1_ALLOW_ANONYMOUS: "true",
    N1_ALLOW_INSECURE_UPSTREAMS: "true",
    N1_CONFIG: { ensembles: { council: { panel: [mockModel(mock, `${tag}-panel`)], summary: mockModel(mock, `${tag}-summary`) } } },
  });

async function answer(url) {
  const r = await postChat(url, { model: "council", messages: [{ role: "user", content: "hi" }] });
  const body = await r.json();
  assert.equal(r.status, 200, JSON.stringify(body));
  return body.choices[0].message.content;
}

test("`npm run dev -- --port <port>` starts there, answers a chat, and stops whole on SIGTERM", async () => {
  // The project's own .dev.vars (the scratch copy's), as the README says.
  fs.writeFileSync(path.join(project.dir, ".dev.vars"), vars("one"));
  const port = await freePort();
  // Miniflare writes the workerd config it starts here (its own debugging switch).
  const dump = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "n1-workerd-")), "config.txt");
  const dev = await startDev({ dir: project.dir, command: `npm run dev -- --port ${port}`, port, env: { MINIFLARE_WORKERD_CONFIG_DEBUG: dump } });
  try {
    assert.equal(await answer(dev.url), "answer from one-summary");
    assert.equal(mock.requestsFor("one-panel").length, 1);
    // /v1/* goes from Miniflare's entry straight to the worker (its routes), past the asset
    // router; every other path still reaches the static assets through it.
    const routes = [...fs.readFileSync(dump, "utf8").matchAll(/"name": "MINIFLARE_ROUTES",\s*"json": "((?:[^"\\]|\\.)*)"/g)].map((m) => JSON.parse(JSON.parse(`"${m[1]}"`)));
    assert.ok(routes.some((r) => r.some((x) => x.target === "n1" && x.route === "*/v1/*")), JSON.stringify(routes));
    assert.match(dev.output(), /\/v1\/\*: straight to the worker/);
    const page = await fetch(`${dev.url}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type"), /text\/html/);
    // wrangler.local.toml: wrangler.toml without the [ai] binding (it would need a login).
    const local = fs.readFileSync(path.join(project.dir, "wrangler.local.toml"), "utf8");
    assert.match(local, /\[assets\]/);
    assert.doesNotMatch(local, /^\[ai\]/m);
    // wrangler's dev server without its inspector (which relays every fetch and chunk, bench/NOTES.md).
    const workerd = dev.processes().filter((p) => /workerd serve/.test(p.cmd));
    assert.ok(workerd.length > 0, dev.processes().map((p) => p.cmd).join("\n"));
    assert.ok(workerd.every((p) => !p.cmd.includes("--inspector-addr")), workerd.map((p) => p.cmd).join("\n"));
  } finally {
    fs.rmSync(path.dirname(dump), { recursive: true, force: true });
    await dev.stop(); // throws if any process of the group (npm, dev script, wrangler, workerd) is left
  }
});

test("run_worker_first rules that are plain prefixes become Miniflare routes to the worker; others are left to the asset router", () => {
  const w = (routing) => ({ assets: { routerConfig: { has_user_worker: true, ...(routing ? { static_routing: routing } : {}) } } });
  assert.deepEqual(apiRoutes(w({ user_worker: ["/v1/*"] })), ["*/v1/*"]);
  assert.deepEqual(apiRoutes(w({ user_worker: ["/v1/*", "/api/*"] })), ["*/v1/*", "*/api/*"]);
  // A negative rule carves paths out of a positive one: only the router knows which.
  assert.deepEqual(apiRoutes(w({ user_worker: ["/v1/*"], asset_worker: ["/v1/page"] })), []);
  // Exact paths and inner wildcards are not prefixes.
  assert.deepEqual(apiRoutes(w({ user_worker: ["/v1/chat"] })), []);
  assert.deepEqual(apiRoutes(w({ user_worker: ["/v1/*/x/*"] })), []);
  assert.deepEqual(apiRoutes(w(null)), []);
  assert.deepEqual(apiRoutes({}), []);
});

test("N1_DEV_INSPECT=1, or a wrangler flag of its own, runs plain `wrangler dev`, inspector included", async () => {
  fs.writeFileSync(path.join(project.dir, ".dev.vars"), vars("one"));
  for (const [extra, env] of [["--log-level info", {}], ["", { N1_DEV_INSPECT: "1" }]]) {
    const port = await freePort();
    const dev = await startDev({ dir: project.dir, command: `npm run dev -- --port ${port} ${extra}`, port, env });
    try {
      assert.equal(await answer(dev.url), "answer from one-summary");
      const cmds = dev.processes().map((p) => p.cmd);
      assert.ok(cmds.some((c) => new RegExp(`wrangler.* dev .*--port ${port}${extra && ` ${extra}`}$`).test(c)), cmds.join("\n"));
      assert.ok(cmds.some((c) => /workerd serve/.test(c) && c.includes("--inspector-addr")), cmds.join("\n"));
    } finally {
      await dev.stop();
    }
  }
});

test("the vars file is watched: a changed config is served without a restart (--ip=, --port=, --env-file=)", async () => {
  const file = path.join(project.dir, "test.vars");
  fs.writeFileSync(file, vars("A"));
  const port = await freePort();
  const dev = await startDev({ dir: project.dir, command: `npm run dev -- --ip=127.0.0.1 --port=${port} --env-file=test.vars`, port });
  try {
    assert.equal(await answer(dev.url), "answer from A-summary");
    // Rewritten the way editors do: a new file renamed over the old one.
    fs.writeFileSync(`${file}.tmp`, vars("B"));
    fs.renameSync(`${file}.tmp`, file);
    const deadline = Date.now() + 30_000;
    let got;
    while ((got = await answer(dev.url).catch((e) => e.message)) !== "answer from B-summary") {
      assert.ok(Date.now() < deadline, `still "${got}" 30 s after the vars file changed:\n${dev.output().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.match(dev.output(), /test\.vars changed: reloading the worker/);
    assert.ok(!/[AB]-(panel|summary)/.test(dev.output()), "the vars files' contents are never logged");
  } finally {
    await dev.stop();
  }
});

test("the README's `npx wrangler deploy --dry-run --outdir …` bundles offline and reports the gzip size", async () => {
  const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
  const [, command, outdir] = readme.match(/`(npx wrangler deploy --dry-run --outdir (\S+))`/) ?? [];
  assert.ok(command, "README: no `npx wrangler deploy --dry-run --outdir …` command");
  // As written; the scratch project is a temporary directory, so is its outdir.
  const r = await sh(project.dir, command, { timeoutMs: 300_000 });
  const out = r.stdout + r.stderr;
  assert.equal(r.code, 0, out);
  const m = out.match(/Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/);
  assert.ok(m, out);
  // What the README says of the bundle (Cloudflare's free-plan limit is 3 MB compressed).
  const [, claim] = readme.match(/\(under\s+(\d+) KiB gzipped/) ?? [];
  assert.ok(claim, "README: no `(under N KiB gzipped` next to the dry-run command");
  assert.ok(Number(m[2]) > 50 && Number(m[2]) <= Number(claim), `gzip ${m[2]} KiB, the README says under ${claim} KiB`);
  assert.ok(fs.existsSync(path.join(project.dir, outdir, "entry.js")), out);
  assert.match(out, /--dry-run: exiting now/);
});
