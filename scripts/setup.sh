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

# What the integration tests need beyond Node (`setup.sh --tests`, from test.sh):
# headless Chromium for the chat-page test (Debian's package, since browser
# downloads from the web are not possible here), curl and Python 3 for the
# README's examples (tests/readme.test.mjs).
if [ "${1:-}" = "--tests" ]; then
  missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  command -v curl >/dev/null || missing+=(curl)
  # Debian's python3 has no venv/ensurepip without python3-venv.
  python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3 python3-venv)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian's ${missing[*]} for the tests"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  # The `openai` Python package for the README's Python example, in a venv of its own.
  if ! "$N1_PY_VENV/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$OPENAI_PY_VERSION')" 2>/dev/null; then
    log "installing the openai Python package $OPENAI_PY_VERSION into $N1_PY_VENV"
    rm -rf "$N1_PY_VENV"
    python3 -m venv "$N1_PY_VENV"
    "$N1_PY_VENV/bin/pip" install --quiet --disable-pip-version-check "openai==$OPENAI_PY_VERSION"
  fi
  # And the `anthropic` package, for the README's Anthropic Messages example.
  if ! "$N1_PY_VENV/bin/python" -c "import anthropic, sys; sys.exit(anthropic.__version__ != '$ANTHROPIC_PY_VERSION')" 2>/dev/null; then
    log "installing the anthropic Python package $ANTHROPIC_PY_VERSION into $N1_PY_VENV"
    "$N1_PY_VENV/bin/pip" install --quiet --disable-pip-version-check "anthropic==$ANTHROPIC_PY_VERSION"
  fi
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
