// A worker in workerd through Miniflare, hosted in its own Node process (forked by
// bench/dev-targets.mjs), so that the Node side of Miniflare (its inspector proxy when an
// inspector is on) does not run in the process that measures. argv[2]: JSON
// {scriptPath, bindings, modules, inspector, methods}: with `inspector`, workerd gets an
// inspector port; `methods` (e.g. ["Runtime.enable", "Network.enable"]) are then sent by a
// client connected to it, as wrangler's inspector proxy does. Replies {url, pid} over IPC;
// "counts" asks for the inspector events received since the last ask, by method.
import { createRequire } from "node:module";
import { startWorkerd } from "./lib.mjs";

const spec = JSON.parse(process.argv[2]);
process.chdir(new URL("..", import.meta.url).pathname);
const w = await startWorkerd({ scriptPath: spec.scriptPath, bindings: spec.bindings, modules: spec.modules ?? true, ...(spec.inspector ? { inspectorPort: 0 } : {}) });
let ws;
const counts = {};
if (spec.methods?.length) {
  const WebSocket = createRequire(import.meta.resolve("miniflare"))("ws");
  const base = await w.mf.getInspectorURL();
  const list = await (await fetch(new URL("/json/list", base.href.replace(/^ws/, "http")))).json();
  const target = list.find((t) => /core:user/.test(`${t.id} ${t.title} ${t.webSocketDebuggerUrl}`)) ?? list[0];
  ws = new WebSocket(target.webSocketDebuggerUrl.replace("localhost", "127.0.0.1"));
  await new Promise((res, rej) => (ws.once("open", res), ws.once("error", rej)));
  let id = 1e8;
  // Events are read and dropped (counted by method; the counts go back over IPC on "counts").
  ws.on("message", (d) => {
    const method = JSON.parse(d.toString()).method ?? "(reply)";
    counts[method] = (counts[method] ?? 0) + 1;
  });
  for (const method of spec.methods) ws.send(JSON.stringify({ id: ++id, method }));
  setInterval(() => ws.send(JSON.stringify({ id: ++id, method: "Runtime.getIsolateId" })), 10_000).unref();
}
process.send({ url: w.url, pid: w.pid });
process.on("message", async (m) => {
  if (m === "counts") {
    process.send({ counts: { ...counts } });
    for (const k of Object.keys(counts)) delete counts[k];
  }
  if (m === "close") {
    ws?.close();
    await w.close();
    process.exit(0);
  }
});
process.on("disconnect", async () => {
  await w.close();
  process.exit(0);
});
