#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine, then runs it.
# This is the README's test command and what CI (.ci/run) runs.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> toolchain: wasm32-wasip2 target"
rustup target add wasm32-wasip2

echo "==> plugin toolchains: componentize-py (PyPI), componentize-js (npm)"
python3 -m pip install --quiet componentize-py==0.25.1
(cd plugins/js/header-router && npm ci --no-audit --no-fund)

echo "==> AMQP client for the integration tests: pika (PyPI)"
python3 -m pip install --quiet pika==1.4.4

echo "==> tools the README tour and HTTPS admin tests run: curl"
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }

echo "==> a NATS cluster for the JetStream store's tests: nats-server (Debian)"
command -v nats-server >/dev/null || { apt-get update -qq && apt-get install -y -qq nats-server; }

echo "==> tests"
cargo test --all-targets 2>&1
