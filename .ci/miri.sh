#!/usr/bin/env bash
# .ci/miri.sh: the engine's and the C ABI's test suites under miri, which
# reports undefined behaviour in our unsafe code (the zero-copy loader's
# casts, the aligned owned buffer, the workspace indexing, every pointer and
# length the C ABI takes, its object-type tags, its thread-local cache).
#
#   bash .ci/miri.sh               # both suites
#   bash .ci/miri.sh ffi           # one of them: engine or ffi
#   bash .ci/miri.sh quick         # the C ABI's object and pointer checks: minutes
#
# LONG: the two suites take hours on the 2-core CI machine (miri interprets
# every operation, floats in software), so every CI run does `quick` (the
# ffi tests that hand the library NULLs, wrong object types, misaligned and
# overlapping buffers, and free them: where the C ABI's unsafe code lives),
# and the full suites run when MICROVIT_CI_MIRI=1 is set: a nightly or weekly
# schedule, and before a release. Installs the nightly toolchain and its miri component
# when they are missing (the first run needs the network).
#
# Flags: MICROVIT_BACKEND=scalar (under miri no SIMD feature is detected
# anyway; the kernels are covered natively and by the fuzz targets with
# AddressSanitizer); -Zmiri-disable-isolation (the tests read the shipped
# models and data, and check FIFOs and devices); -Zmiri-deterministic-floats
# (the tests compare a path with itself exactly, and miri otherwise perturbs
# exp and sqrt by a few ulps on purpose). MIRIFLAGS from the environment are
# added (e.g. -Zmiri-seed=3 to move allocations around).
#
# What miri does not run, and why: docs/ERRORS.md, "How this is tested, and
# what miri covers". Every ffi test runs (heavy loops take fewer images
# under cfg(miri); the FIFO part of one test needs mkfifo, a process miri
# cannot start); the engine's tests over all 10,000 test digits and other
# loops of hours are #[cfg_attr(miri, ignore)] and counted as ignored below.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TERM_COLOR=never

SUITES=("${@:-engine ffi}")
# shellcheck disable=SC2206
SUITES=(${SUITES[*]})
# The quick set: each runs in seconds to a few minutes under miri.
QUICK=(workspace_create_checks_its_arguments free_accepts_null load_from_memory load_borrowed
    shape_of_the_seed_model last_error_message_truncates_and_terminates last_error_message_is_capped_and_per_thread
    status_codes_are_stable version_is_the_crate_version batch_checks_every_argument)
start=$SECONDS
step() { printf '\n==> [%5ds] %s\n' $((SECONDS - start)) "$*"; }

step "tools"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal </dev/null
fi
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    rustup component add miri rust-src --toolchain nightly </dev/null
fi
cargo +nightly miri setup </dev/null >/dev/null
echo "  $(cargo +nightly miri --version)"

# The engine's tests inflate the MNIST test set with `zcat`, a process miri
# cannot start: they read uncompressed copies instead (engine/tests/common).
mkdir -p target/miri-data
for f in t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    [ -s "target/miri-data/$f" ] || gunzip -c "data/$f.gz" >"target/miri-data/$f"
done
export MICROVIT_TEST_IMAGES=$PWD/target/miri-data/t10k-images-idx3-ubyte
export MICROVIT_TEST_LABELS=$PWD/target/miri-data/t10k-labels-idx1-ubyte

export MICROVIT_BACKEND=scalar
export MIRIFLAGS="-Zmiri-disable-isolation -Zmiri-deterministic-floats ${MIRIFLAGS:-}"
log_dir=target/miri-logs
mkdir -p "$log_dir"
failed=()
for suite in "${SUITES[@]}"; do
    case $suite in
        # The engine's suite includes preprocessing (its own crate).
        engine) args=(-p microvit-engine -p microvit-preprocess) ;;
        ffi) args=(-p microvit-ffi) ;;
        quick) args=(-p microvit-ffi --test abi -- "${QUICK[@]}") ;;
        *) printf 'miri.sh: unknown suite %s (engine, ffi or quick)\n' "$suite" >&2; exit 2 ;;
    esac
    step "miri: $suite (log in $log_dir/$suite.log)"
    suite_start=$SECONDS
    if cargo +nightly miri test --no-fail-fast "${args[@]}" </dev/null >"$log_dir/$suite.log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed+=("$suite")
        grep -E 'Undefined Behavior|error:|panicked|FAILED' -A6 "$log_dir/$suite.log" | head -60 >&2 || true
    fi
    # One line per test target: passed, failed, ignored.
    awk '/^test result:/ { p += $4; f += $6; i += $8; n++ }
         END { printf "  %d test targets: %d passed, %d failed, %d ignored\n", n, p, f, i }' "$log_dir/$suite.log"
    printf '  %s in %d s\n' "$status" $((SECONDS - suite_start))
done

[ ${#failed[@]} -eq 0 ] || { printf 'miri.sh: FAILED: %s (logs in %s)\n' "${failed[*]}" "$log_dir" >&2; exit 1; }
step "miri: no undefined behaviour"
