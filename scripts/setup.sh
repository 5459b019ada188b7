#!/usr/bin/env bash
# Installs what the build, `wrangler dev` and the tests need, on a bare machine.
# Everything is version-checked first, so a warm machine spends about a second here.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

command -v cargo >/dev/null || { echo "cargo (Rust) is required: https://rustup.rs" >&2; exit 1; }
command -v node >/dev/null || { echo "Node.js 20+ is required" >&2; exit 1; }

if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

mkdir -p "$N1_TOOLS_DIR"
if ! "$WORKER_BUILD_BIN" --version 2>/dev/null | grep -q "$WORKER_BUILD_VERSION"; then
  log "installing worker-build $WORKER_BUILD_VERSION into $N1_TOOLS_DIR (a few minutes, once)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked --root "$N1_TOOLS_DIR"
fi
if ! "$WASM_BINDGEN_BIN" --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
  log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION into $N1_TOOLS_DIR (a few minutes, once)"
  # Not --locked: its lockfile pins a crate version that the registry no longer serves.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --root "$N1_TOOLS_DIR"
fi

# Headless Chromium for the browser tests (`setup.sh --browser`, from test.sh):
# Debian's package, since browser downloads from the web are not possible here.
if [ "${1:-}" = "--browser" ] && ! command -v chromium >/dev/null; then
  log "installing Debian's chromium for the browser tests"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

# npm packages (wrangler, miniflare, binaryen's wasm-opt, esbuild, openai), reinstalled
# only when package-lock.json changes.
stamp=node_modules/.n1-lock-stamp
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
