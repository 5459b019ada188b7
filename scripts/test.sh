#!/usr/bin/env bash
# Every test: host unit tests, then the worker built and run in workerd (Miniflare)
# against a mock upstream, driven through real HTTP by real clients.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
source scripts/env.sh
echo "== cargo test (host)"
cargo test --quiet
echo "== build"
bash scripts/build.sh >/dev/null
echo "== integration tests (workerd)"
node --test --test-concurrency=1 "${@:-tests/}"
