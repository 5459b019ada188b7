#!/usr/bin/env bash
# Release build of the worker into build/ (wrangler.toml's [build] command).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
[ -x "$WORKER_BUILD_BIN" ] || bash scripts/setup.sh
"$WORKER_BUILD_BIN" --release "$@"
# Optimized for size, without the names section (function names only serve
# stack traces and profiles; they were 17 % of the bundle): N1_KEEP_NAMES=1
# keeps them, for bench/profile.mjs and size analysis. The features are the
# ones worker-build enables, so nothing newer than workerd supports is emitted.
features=(mutable-globals sign-ext nontrapping-float-to-int bulk-memory multivalue reference-types exception-handling)
names=--strip-debug
[ "${N1_KEEP_NAMES:-}" = 1 ] && names=--debuginfo
"$WASM_OPT_BIN" build/index_bg.wasm -Oz "$names" --strip-producers "${features[@]/#/--enable-}" -o build/index_bg.wasm
