#!/usr/bin/env bash
# Builds out/view_router.wasm (world `view-router`). Needs `pip install componentize-py==0.25.1`.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p out
componentize-py -d ../../../wit -w view-router componentize app -o out/view_router.wasm
