#!/usr/bin/env bash
# Runs the worker locally on http://127.0.0.1:8787 (extra arguments go to `wrangler dev`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
if [ ! -f .dev.vars ]; then
  cp .dev.vars.example .dev.vars
  echo "[dev] created .dev.vars from .dev.vars.example: put your ensemble config and API keys there." >&2
fi
exec wrangler dev --ip 127.0.0.1 --port 8787 "$@"
