#!/usr/bin/env bash
# The release build of N-1 at another commit, with that commit's own worker/entry.mjs, for
# side-by-side runs against the current code (bench/devpath.mjs's n1-at-mf variant with
# BENCH_BUILD_DIR, or bench/compare.mjs with ?entry=entry.mjs):
#   bash bench/build-at.sh <commit>        -> bench/.builds/<commit>/
# That commit's bench/reference-worker.mjs comes along (the ref-at-mf variant).
# Built in a throwaway git worktree with that commit's own scripts (tools from scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
commit=$(git rev-parse --short "${1:?usage: bench/build-at.sh <commit>}")
out="bench/.builds/$commit"
[ -s "$out/entry.mjs" ] && { echo "$out"; exit 0; }
source scripts/env.sh
[ -x "$WORKER_BUILD_BIN" ] || bash scripts/setup.sh
wt=$(mktemp -d)
trap 'git worktree remove --force "$wt" >/dev/null 2>&1 || rm -rf "$wt"' EXIT
git worktree add --detach "$wt" "$commit" >/dev/null
ln -s "$PWD/node_modules" "$wt/node_modules"
(cd "$wt" && CARGO_TARGET_DIR="${TMPDIR:-/tmp}/n1-build-at-target" N1_FORCE_BUILD=1 bash scripts/build.sh >&2)
rm -rf "$out" && mkdir -p "$out"
cp "$wt"/build/index.js "$wt"/build/index_bg.wasm "$out"/
cp "$wt/bench/reference-worker.mjs" "$out/"
sed 's#"../build/index.js"#"./index.js"#' "$wt/worker/entry.mjs" > "$out/entry.mjs"
echo "$out"
