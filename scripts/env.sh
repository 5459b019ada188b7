# Shared settings for the scripts (sourced, not run).
export N1_TOOLS_DIR="${N1_TOOLS_DIR:-$HOME/.cache/n1-tools}"
export WORKER_BUILD_VERSION=0.8.7
# Must equal the exact wasm-bindgen pinned in Cargo.toml.
export WASM_BINDGEN_VERSION=$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' Cargo.toml)
export WORKER_BUILD_BIN="$N1_TOOLS_DIR/bin/worker-build"
# worker-build would otherwise download these from GitHub, which these machines cannot reach.
export WASM_BINDGEN_BIN="$N1_TOOLS_DIR/bin/wasm-bindgen"
export WASM_OPT_BIN="$PWD/node_modules/binaryen/bin/wasm-opt"
export ESBUILD_BIN="$PWD/node_modules/.bin/esbuild"
# The Python virtualenv for the README's Python example (tests/readme.test.mjs).
export N1_PY_VENV="$N1_TOOLS_DIR/py"
export OPENAI_PY_VERSION=3.57.0
export ANTHROPIC_PY_VERSION=2.15.0
export PATH="$PWD/node_modules/.bin:$N1_TOOLS_DIR/bin:$PATH"
# wrangler: no telemetry, no download of Request.cf data (offline machines).
export WRANGLER_SEND_METRICS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false
