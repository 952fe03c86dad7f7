#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine, then runs it.
# This is the README's test command and what CI (.ci/run) runs.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> toolchain: wasm32-wasip2 target"
rustup target add wasm32-wasip2

echo "==> tests"
cargo test --all-targets 2>&1
