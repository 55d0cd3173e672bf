#!/usr/bin/env bash
# .ci/fuzz.sh: a short run of every cargo-fuzz target (fuzz/), so that a
# change that makes hostile input crash, hang or disagree fails CI.
#
#   bash .ci/fuzz.sh                      # every target, 30 s each
#   FUZZ_SECONDS=600 bash .ci/fuzz.sh classify ffi_calls   # longer, some targets
#
# Needs only rustup and a stable toolchain: installs the nightly toolchain
# (minimal profile) and cargo-fuzz when they are missing, then builds every
# target once (libFuzzer, AddressSanitizer, debug assertions and overflow
# checks on) and runs each from its committed seeds (fuzz/seeds/TARGET) plus
# the corpus of earlier runs (fuzz/corpus/TARGET, not committed). About
# 7 minutes from nothing on a 2-core machine, 3 once the tools are there.
#
# On a crash the input is in fuzz/artifacts/TARGET/; reproduce with
#   cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...
# then fix it and keep the input as a test (engine/tests/properties.rs and
# converter/tests/properties.rs hold the ones found so far).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TERM_COLOR=never

SECONDS_PER_TARGET=${FUZZ_SECONDS:-30}
ALL_TARGETS=(load_blob convert calibration classify ffi_calls decoders)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

start=$SECONDS
step() { printf '\n==> [%3ds] %s\n' $((SECONDS - start)) "$*"; }
fail() {
    printf 'fuzz.sh: FAILED: %s\n' "$*" >&2
    exit 1
}

step "tools"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal </dev/null
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked </dev/null
fi
echo "  $(rustup run nightly rustc --version), $(cargo fuzz --version)"

step "build (${#ALL_TARGETS[@]} targets)"
cargo +nightly fuzz build </dev/null

failed=()
for target in "${TARGETS[@]}"; do
    [ -d "fuzz/seeds/$target" ] || fail "unknown target $target (no fuzz/seeds/$target)"
    step "fuzz $target for ${SECONDS_PER_TARGET}s"
    corpus=fuzz/corpus/$target
    mkdir -p "$corpus" "fuzz/artifacts/$target"
    log=fuzz/artifacts/$target/last-run.log
    # -timeout: one input taking 10 s counts as a hang; -rss_limit_mb: as a
    # runaway allocation. The seeds are read-only inputs, new finds go to
    # the corpus.
    if cargo +nightly fuzz run "$target" "$corpus" "fuzz/seeds/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        </dev/null >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        echo "  ok  $target: ${runs:-?} executions, corpus $(find "$corpus" -type f | wc -l) inputs"
    else
        grep -E 'panicked at|ERROR: (libFuzzer|AddressSanitizer)|SUMMARY|Test unit written' -A2 "$log" >&2 || tail -40 "$log" >&2
        failed+=("$target")
    fi
done

[ ${#failed[@]} -eq 0 ] || fail "${failed[*]} (logs and inputs in fuzz/artifacts/)"
step "all targets clean"
