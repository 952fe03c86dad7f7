#!/usr/bin/env bash
# Builds the example plugins and runs the broker with embedded defaults: data in
# ./switchyard-data, AMQP on 127.0.0.1:5673, the HTTP admin API on 127.0.0.1:15673, the example
# plugins deployed and watched for hot reload (rebuild one in plugins/ and the running broker
# picks it up). Extra arguments go to `switchyard serve` (see `switchyard serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null
echo "==> building the example plugins"
(cd plugins && cargo build --release --target wasm32-wasip2 \
    -p header-router -p json-router -p redact-pii -p size-filter)
echo "==> starting switchyard"
exec cargo run --release -- serve --plugins-dir plugins/target/wasm32-wasip2/release "$@"
