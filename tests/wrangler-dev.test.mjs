// The worker behind `wrangler dev`'s proxy, started with `npm run dev` as users
// run it: the proxy passes a client's disconnect on, and copes with an early
// reply to an unread upload, differently from plain Miniflare (TOOLCHAIN.md).
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { startMockUpstream } from "./helpers/mock-upstream.mjs";
import { mockModel, postChat } from "./helpers/worker.mjs";
import { scratchProject, startDev, freePort, varsFile } from "./helpers/dev-server.mjs";

const MAX_BODY = 64 * 1024;
let mock, project, dev;
const user = (content) => [{ role: "user", content }];

before(async () => {
  mock = await startMockUpstream();
  project = scratchProject();
  const m = (name) => mockModel(mock, name);
  fs.writeFileSync(
    path.join(project.dir, ".dev.vars"),
    varsFile({
      N1_ALLOW_ANONYMOUS: "true",
      N1_ALLOW_INSECURE_UPSTREAMS: "true",
      N1_MAX_BODY_BYTES: String(MAX_BODY),
      // keep_alive_ms is left at its default (3 s).
      N1_CONFIG: { ensembles: { council: { panel: [m("p1"), m("p2")], summary: m("sum") } } },
    }),
  );
  const port = await freePort();
  dev = await startDev({ dir: project.dir, command: `npm run dev -- --port ${port}`, port });
});
after(async () => {
  try {
    await dev?.stop();
  } finally {
    await mock?.close();
    project?.remove();
  }
});
beforeEach(() => mock.reset());

/** A chunked upload (no content-length) of `size` bytes. */
function chunkedBody(size) {
  const chunk = new Uint8Array(16 * 1024).fill(0x20);
  let sent = 0;
  return new ReadableStream({
    pull(c) {
      if (sent >= size) return c.close();
      sent += chunk.length;
      c.enqueue(chunk);
    },
  });
}

test("after a 413 on a chunked upload, the next requests are answered (the proxy is not left waiting on the unread body)", async () => {
  for (let round = 1; round <= 2; round++) {
    const big = await fetch(`${dev.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chunkedBody(8 * MAX_BODY),
      duplex: "half",
      signal: AbortSignal.timeout(20_000),
    });
    const text = await big.text();
    assert.equal(big.status, 413, `round ${round}: ${text}`);
    assert.equal(JSON.parse(text).error.code, "request_too_large");

    let r;
    try {
      r = await postChat(dev.url, { model: "council", messages: user("q") }, {}, AbortSignal.timeout(20_000));
    } catch (e) {
      assert.fail(`round ${round}: the request after the 413 got no answer within 20 s (${e.name})`);
    }
    const body = await r.text();
    assert.equal(r.status, 200, `round ${round}: ${body}`);
    assert.equal(JSON.parse(body).choices[0].message.content, "answer from sum");
    const models = await fetch(`${dev.url}/v1/models`, { signal: AbortSignal.timeout(20_000) });
    assert.equal(models.status, 200, await models.text());
  }
});

test("a client that leaves while the panel works (default keep_alive_ms) is noticed within it: the panel calls are aborted and the summary is never called", async () => {
  mock.set("p1", { delayMs: 4000 });
  mock.set("p2", { delayMs: 4000 });
  const ac = new AbortController();
  const r = await postChat(dev.url, { model: "council", stream: true, messages: user("q") }, {}, ac.signal);
  assert.equal(r.status, 200);
  const reader = r.body.getReader();
  let got = "";
  while (!got.includes('"role":"assistant"')) got += new TextDecoder().decode((await reader.read()).value);
  await mock.waitFor(() => mock.requestsFor("p1").length && mock.requestsFor("p2").length);
  ac.abort();
  // The panel would answer after 4 s; an abort shows as closedEarly.
  await mock.waitFor(() => ["p1", "p2"].every((m) => mock.requestsFor(m)[0].endedAt), 10_000);
  for (const m of ["p1", "p2"]) assert.equal(mock.requestsFor(m)[0].closedEarly, true, `${m} ran to completion`);
  await new Promise((res) => setTimeout(res, 1500));
  assert.equal(mock.requestsFor("sum").length, 0, "the summary model was called for a client that had left");
});
