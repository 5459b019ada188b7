#!/usr/bin/env bash
# Benchmarks (not part of `npm test`): builds the worker in release mode, runs it and
# the JavaScript reference worker in workerd against a local mock upstream, and writes
# BENCHMARKS.md. BENCH_QUICK=1 for a short run; see bench/run.mjs for the other knobs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
exec node bench/run.mjs "$@"
