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
# The Workers AI binding makes `wrangler dev` demand a Cloudflare login even
# offline, so by default the local run uses a copy of wrangler.toml without it.
# N1_DEV_AI=1 (after `npx wrangler login`) keeps it: the built-in default
# ensemble then answers locally too.
config=wrangler.toml
if [ "${N1_DEV_AI:-}" != 1 ]; then
  config=wrangler.local.toml
  awk '/^\[ai\]/{skip=1; next} /^\[/{skip=0} !skip' wrangler.toml > "$config"
fi
exec wrangler dev --config "$config" --ip 127.0.0.1 --port 8787 "$@"
