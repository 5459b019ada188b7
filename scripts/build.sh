#!/usr/bin/env bash
# Release build of the worker into build/ (wrangler.toml's [build] command).
# Skipped when build/ already holds the build of exactly these sources: `wrangler dev`
# runs this at start, again when its watcher is ready, and on every reload (a
# changed .dev.vars, see scripts/dev.mjs), and the wasm-opt pass takes 10-20 s
# even when cargo has nothing to do. N1_FORCE_BUILD=1 always builds.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
[ -x "$WORKER_BUILD_BIN" ] || bash scripts/setup.sh

stamp=build/.n1-inputs
# Everything the output depends on: the sources (by content, so a copy of the
# project with the same files counts as the same), the lockfile, the tool
# versions, the arguments, the compiler flags and whether names are kept.
inputs=$(
  {
    find -L src -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    sha256sum Cargo.toml Cargo.lock scripts/build.sh
    echo "worker-build $WORKER_BUILD_VERSION wasm-bindgen $WASM_BINDGEN_VERSION $(rustc -V 2>/dev/null)"
    echo "args: $* RUSTFLAGS=${RUSTFLAGS:-} N1_KEEP_NAMES=${N1_KEEP_NAMES:-}"
  } | sha256sum | cut -d' ' -f1
)
if [ "${N1_FORCE_BUILD:-}" != 1 ] && [ "$(cat "$stamp" 2>/dev/null)" = "$inputs" ] \
  && [ -s build/index.js ] && [ -s build/index_bg.wasm ]; then
  echo "[build] build/ is up to date with src/ (N1_FORCE_BUILD=1 rebuilds)" >&2
  exit 0
fi
rm -f "$stamp"
"$WORKER_BUILD_BIN" --release "$@"
# Optimized for size, without the names section (function names only serve
# stack traces and profiles; they were 17 % of the bundle): N1_KEEP_NAMES=1
# keeps them, for bench/profile.mjs and size analysis. The features are the
# ones worker-build enables, so nothing newer than workerd supports is emitted.
# --low-memory-unused: Rust's linker puts the stack first (its bottom at
# 1 MiB) and the data after it, so the first 1 KiB of memory is never
# addressed; binaryen may then fold address offsets (-1 KiB gzipped).
# Then --gufa: whole-program inference of the values that reach each
# place, which lets -Oz drop more dead code (-1 KiB gzipped).
features=(mutable-globals sign-ext nontrapping-float-to-int bulk-memory multivalue reference-types exception-handling)
names=--strip-debug
[ "${N1_KEEP_NAMES:-}" = 1 ] && names=--debuginfo
"$WASM_OPT_BIN" build/index_bg.wasm -Oz --gufa -Oz --low-memory-unused "$names" --strip-producers "${features[@]/#/--enable-}" -o build/index_bg.wasm
echo "$inputs" > "$stamp"
