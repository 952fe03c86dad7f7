#!/usr/bin/env bash
# Fuzz the AMQP front end for a bounded time per target (default 60 s each).
#
#   scripts/fuzz.sh [SECONDS]
#
# Installs cargo-fuzz when missing. No nightly toolchain is needed: RUSTC_BOOTSTRAP=1 lets the
# stable compiler accept the sanitizer flags cargo-fuzz passes. Crashing inputs are written to
# fuzz/artifacts/<target>/; copy them to fuzz/regressions/<target>/ so that
# `cargo test --test all amqp::fuzz` replays them without cargo-fuzz.
set -euo pipefail
seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
cd "$root/fuzz"
# The connection target's broker lives in a temp dir: on tmpfs its fsyncs cost nothing.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
# The machine is small and shared.
export CARGO_BUILD_JOBS="${FUZZ_BUILD_JOBS:-2}"
for target in amqp_frames amqp_connection; do
    corpus="$root/fuzz/corpus/$target"
    mkdir -p "$corpus" "$root/fuzz/artifacts/$target"
    # Seed with the saved inputs: they start deep in the protocol.
    cp -n "$root/fuzz/regressions/$target/"* "$root/fuzz/seeds/$target/"* "$corpus/" 2>/dev/null || true
    echo "== $target: ${seconds}s"
    # -s none: our code has no unsafe, so ASan would only slow the build and the runs;
    # libFuzzer still catches every panic (its hook aborts) and every hang (-timeout).
    cargo fuzz run -s none "$target" "$corpus" -- \
        -max_total_time="$seconds" -max_len=4096 -len_control=0 -timeout=20 -print_final_stats=1 \
        > "$root/fuzz/artifacts/$target/last-run.log" 2>&1 || true
    # The summary: final stats, any crash report.
    grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::|ERROR|panicked|SUMMARY|Test unit written" \
        "$root/fuzz/artifacts/$target/last-run.log" || tail -20 "$root/fuzz/artifacts/$target/last-run.log"
    if ls "$root/fuzz/artifacts/$target"/crash-* >/dev/null 2>&1; then
        echo "!! $target: crashing inputs in fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
rm -rf "${TMPDIR:-/tmp}"/switchyard-fuzz-*
