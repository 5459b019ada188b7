#!/usr/bin/env bash
# Runs the worker locally on http://127.0.0.1:8787 (extra arguments go to `wrangler dev`);
# scripts/dev.mjs does the work once the tools are in place.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
exec node scripts/dev.mjs "$@"
