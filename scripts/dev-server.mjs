// `npm run dev`'s server (started by scripts/dev.mjs): wrangler's own dev server,
// the API `wrangler dev` is built on, with its inspector off. `wrangler dev` always
// starts workerd with an inspector that reports every outgoing fetch and every
// streamed chunk, and wrangler relays each report to its Node process: measured,
// that costs more CPU per request than the worker itself on a small machine, and
// the worker's requests wait for it (bench/NOTES.md, "The wrangler dev path").
// Same config, [build] and watch, vars files, local bindings and log lines as
// `wrangler dev`; no DevTools and no hotkeys (N1_DEV_INSPECT=1 gives `wrangler dev`);
// `/v1/*` skips Miniflare's emulated asset router (scripts/dev-worker.mjs).
// argv[2]: JSON {config, ip, port, env, envFiles}.
import { startDevWorker } from "./dev-worker.mjs";

const o = JSON.parse(process.argv[2]);
const worker = await startDevWorker({ config: o.config, env: o.env, envFiles: o.envFiles, hostname: o.ip, port: o.port });
console.error(`[dev] ready on ${(await worker.url).href} (wrangler's dev server, inspector off; N1_DEV_INSPECT=1 for DevTools)`);

let stopping = false;
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, async () => {
    if (stopping) return;
    stopping = true;
    await worker.dispose().catch(() => {});
    process.exit(0);
  });
}
