#!/usr/bin/env bash
# Release build of the worker into build/ (wrangler.toml's [build] command).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
[ -x "$WORKER_BUILD_BIN" ] || bash scripts/setup.sh
exec "$WORKER_BUILD_BIN" --release "$@"
