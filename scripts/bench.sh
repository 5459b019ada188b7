#!/usr/bin/env bash
# Benchmarks (not part of `npm test`): builds the worker in release mode, runs it and
# the JavaScript reference worker in workerd against a local mock upstream, and writes
# BENCHMARKS.md; then what budgets cost (bench/budget.mjs) and what the streamed panel
# and the straggler cutoff buy (bench/panel.mjs). BENCH_QUICK=1 for a short run; see
# bench/run.mjs for the other knobs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
node bench/run.mjs "$@"
# Their sections of the report (run.mjs keeps them when it rewrites the rest).
node bench/budget.mjs
node bench/panel.mjs
