#!/usr/bin/env bash
# Benchmarks: builds the worker in release mode, runs it and the JavaScript reference
# worker in workerd against a local mock upstream, and writes BENCHMARKS.md; then what
# budgets cost (bench/budget.mjs) and what the streamed panel and the straggler cutoff
# buy (bench/panel.mjs). BENCH_QUICK=1 for a short run (`npm test` runs it so, in
# tests/bench.test.mjs); BENCH_ONLY=<sections> for some of them, budget and panel
# included; see bench/run.mjs for the other knobs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
only=",${BENCH_ONLY:-},"
wanted() { [ -z "${BENCH_ONLY:-}" ] || [[ "$only" == *",$1,"* ]]; }
# run.mjs checks the names, and measures unless only budget and panel are asked for.
if ! [[ "$only" =~ ^(,(budget|panel))+,$ ]]; then
  node bench/run.mjs "$@"
fi
# Their sections of the report (run.mjs keeps them when it rewrites the rest).
if wanted budget; then node bench/budget.mjs; fi
if wanted panel; then node bench/panel.mjs; fi
