// Starts the worker under wrangler's own dev server (`unstable_startWorker`, the API
// `wrangler dev` is built on) with its inspector off, for `npm run dev`
// (scripts/dev-server.mjs) and the bench (bench/wd-api-host.mjs).
//
// One local-only difference from `wrangler dev`: requests whose path matches a
// `run_worker_first` rule (`/v1/*` in wrangler.toml) go straight to the worker.
// With `[assets]`, Miniflare sends every request through two emulated workers
// (its asset RPC proxy, then the asset router, which for those paths only hands
// it on to the worker) and the reply back the same way: ~0.5-1 ms per API request
// on this machine (bench/NOTES.md, "`/v1/*` past the asset router"). Miniflare's own `routes`
// option, given to the worker here, dispatches those paths to it directly; every
// other path (the chat page) still goes through the router. What reaches the
// worker is the same either way. wrangler 4.86 sets no `routes` for local dev and
// takes no Miniflare options, so its `require("miniflare")` is given a
// `Miniflare` that adds them; should wrangler stop loading it that way, nothing
// is added and the router stays in front (tests/dev-script.test.mjs notices).
import Module from "node:module";

/** Miniflare routes for a worker's `run_worker_first` rules, or none when a rule is not a plain prefix. */
export function apiRoutes(worker) {
  const routing = worker?.assets?.routerConfig?.static_routing;
  const rules = routing?.user_worker ?? [];
  // A negative rule (`!/v1/x`) sends a path under a positive one back to the assets: leave those to the router.
  if (!rules.length || routing.asset_worker?.length) return [];
  if (!rules.every((r) => /^\/[^*]*\*$/.test(r))) return [];
  return rules.map((r) => `*${r}`);
}

function withRoutes(options) {
  for (const w of options?.workers ?? []) {
    const routes = apiRoutes(w);
    if (!routes.length || w.routes) continue;
    w.routes = routes;
    if (!told) console.error(`[dev] ${routes.map((r) => r.slice(1)).join(", ")}: straight to the worker, past Miniflare's asset router`);
    told = true;
  }
  return options;
}

let routed = null;
let told = false;
/** Makes wrangler's `require("miniflare")` return a `Miniflare` that adds the routes (once per process). */
function routeApiToWorker() {
  if (Module._load.n1) return;
  const load = Module._load;
  Module._load = function (request, ...rest) {
    const m = load.call(this, request, ...rest);
    if (request !== "miniflare" || !m?.Miniflare) return m;
    routed ??= Object.create(m, {
      Miniflare: {
        value: class extends m.Miniflare {
          constructor(options) {
            super(withRoutes(options));
          }
          setOptions(options) {
            return super.setOptions(withRoutes(options));
          }
        },
      },
    });
    return routed;
  };
  Module._load.n1 = true;
}

/**
 * The dev server for a wrangler config file; resolves once it answers.
 * `assetRouter`: keep Miniflare's asset router in front of every path, as `wrangler dev` does (the bench's comparison).
 */
export async function startDevWorker({ config, env, envFiles, hostname, port, assetRouter = false }) {
  if (!assetRouter) routeApiToWorker();
  const { unstable_startWorker } = await import("wrangler");
  const worker = await unstable_startWorker({
    config,
    ...(env ? { env } : {}),
    ...(envFiles?.length ? { envFiles } : {}),
    dev: { server: { hostname, port: Number(port) }, inspector: false },
  });
  await worker.ready;
  return worker;
}
