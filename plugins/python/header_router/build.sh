#!/usr/bin/env bash
# Builds out/header_router.wasm. Needs `pip install componentize-py==0.25.1`.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p out
componentize-py -d ../../../wit -w router componentize app -o out/header_router.wasm
