// N-1 or the port under wrangler's programmatic dev server, `unstable_startWorker` (the API
// `wrangler dev` itself is built on), with the inspector off (`dev.inspector: false`), hosted
// in its own Node process (forked by bench/dev-targets.mjs) so that wrangler's Node side is
// measured apart. argv[2]: JSON {config, envFiles, port, assetRouter}. Replies {url, pid} over IPC.
import { startDevWorker } from "../scripts/dev-worker.mjs";

const spec = JSON.parse(process.argv[2]);
const worker = await startDevWorker({ config: spec.config, envFiles: spec.envFiles, hostname: "127.0.0.1", port: spec.port, assetRouter: !!spec.assetRouter });
process.send({ url: (await worker.url).href.replace(/\/$/, "") });
process.on("message", async (m) => {
  if (m === "close") {
    await worker.dispose();
    process.exit(0);
  }
});
process.on("disconnect", async () => {
  await worker.dispose();
  process.exit(0);
});
