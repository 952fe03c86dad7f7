#!/usr/bin/env bash
# Fuzz every target for a bounded time each (default 60 s): the AMQP front end, the message
# record and log frame codecs, the admin API's request bodies and plugin results.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Installs cargo-fuzz when missing. No nightly toolchain is needed: RUSTC_BOOTSTRAP=1 lets the
# stable compiler accept the sanitizer flags cargo-fuzz passes. Crashing inputs are written to
# fuzz/artifacts/<target>/; copy them to fuzz/regressions/<target>/ so that
# `cargo test --test all fuzz` replays them without cargo-fuzz. A target with a dictionary in
# fuzz/dicts/<target>.dict (tokens of its input language, e.g. JSON keys) gets it.
set -euo pipefail
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(amqp_frames amqp_connection message_codec store_frame plugin_verdict admin_bodies)
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
cd "$root/fuzz"
# The connection and admin targets' brokers live in a temp dir: on tmpfs its fsyncs cost nothing.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
# The machine is small and shared.
export CARGO_BUILD_JOBS="${FUZZ_BUILD_JOBS:-2}"
failed=()
for target in "${targets[@]}"; do
    corpus="$root/fuzz/corpus/$target"
    mkdir -p "$corpus" "$root/fuzz/artifacts/$target"
    # Seed with the saved inputs: they start deep in the protocol.
    cp -n "$root/fuzz/regressions/$target/"* "$root/fuzz/seeds/$target/"* "$corpus/" 2>/dev/null || true
    dict=()
    if [ -f "$root/fuzz/dicts/$target.dict" ]; then dict=(-dict="$root/fuzz/dicts/$target.dict"); fi
    echo "== $target: ${seconds}s"
    # -s none: our code has no unsafe, so ASan would only slow the build and the runs;
    # libFuzzer still catches every panic (its hook aborts) and every hang (-timeout).
    cargo fuzz run -s none "$target" "$corpus" -- \
        -max_total_time="$seconds" -max_len=4096 -len_control=0 -timeout=20 -print_final_stats=1 "${dict[@]}" \
        > "$root/fuzz/artifacts/$target/last-run.log" 2>&1 || true
    # The summary: final stats, any crash report.
    grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::|ERROR|panicked|SUMMARY|Test unit written" \
        "$root/fuzz/artifacts/$target/last-run.log" || tail -20 "$root/fuzz/artifacts/$target/last-run.log"
    if ls "$root/fuzz/artifacts/$target"/crash-* "$root/fuzz/artifacts/$target"/timeout-* >/dev/null 2>&1; then
        echo "!! $target: crashing inputs in fuzz/artifacts/$target/" >&2
        failed+=("$target")
    fi
done
rm -rf "${TMPDIR:-/tmp}"/switchyard-fuzz-*
# Every target runs even when an earlier one crashed; the exit status says whether any did.
if [ ${#failed[@]} -gt 0 ]; then
    echo "!! crashes in: ${failed[*]}" >&2
    exit 1
fi
