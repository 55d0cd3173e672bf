#!/usr/bin/env bash
# .ci/aarch64.sh: the engine's tests cross-compiled for aarch64-unknown-linux-gnu
# and run under qemu-user, so the NEON kernels (engine/src/{int8,f16}/neon.rs) are
# checked on every CI run without ARM hardware.
#
#   bash .ci/aarch64.sh      # from anywhere in the repository; no stdin needed
#
# Installs what it lacks (apt: the aarch64 cross gcc and libc, qemu-user-static;
# rustup: the aarch64-unknown-linux-gnu target), so the first run needs the
# network and root or sudo; later runs skip that. Builds into $CARGO_TARGET_DIR
# (default target/, shared with .ci/ffi.sh's aarch64 build).
#
#  1. tools     apt packages and the rustup target (skipped when present)
#  2. build     the engine's tests for aarch64 (an aarch64 ELF, checked)
#  3. dotprod   cargo test -p microvit-engine --release under qemu -cpu max (which
#               has the Armv8.2 dot product), models on their default backend
#               (dotprod for int8, neon for f16): every engine test, including
#               tests/backends.rs, where dotprod and neon must reproduce the committed int8
#               checksums (tests/fixtures/*.int8.logits.crc32c) on all 10,000
#               test digits bit for bit, match scalar int8 exactly and f16
#               within 1e-4 on random shapes (proptest); and tests/preprocess.rs,
#               where preprocessing must reproduce the committed checksum of the
#               inputs it makes from 600 drawn digits. The test set is
#               inflated once, here: a test that spawns `zcat` under qemu-user
#               while other test threads run can deadlock in the emulated fork
#               (seen once, a 30-minute hang), so the tests read uncompressed
#               copies (MICROVIT_TEST_IMAGES/LABELS) and spawn nothing. Each
#               cargo test run has a time limit, so a hang fails in minutes.
#               Scalar runs there too: the harness runs every backend this
#               CPU has, scalar included, on the same inputs (the engine reads
#               no environment variable, so there is no separate scalar run).
#               MICROVIT_EXPECT_BACKEND=dotprod: detection must pick it.
#  4. neon      under qemu -cpu cortex-a57 (Armv8.0: no dot product): detection
#               must fall back to neon; the int8 tests of backends.rs and
#               no_alloc.rs again (f16 has no dotprod kernel, so step 3 covered it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TERM_COLOR=never

TARGET=aarch64-unknown-linux-gnu
TARGET_DIR=${CARGO_TARGET_DIR:-target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$PWD/$TARGET_DIR ;; esac
export CARGO_TARGET_DIR=$TARGET_DIR
OUT=$TARGET_DIR/aarch64-ci

start=$SECONDS
step() { printf '\n==> [%3ds] %s\n' $((SECONDS - start)) "$*"; }
fail() {
    printf 'aarch64.sh: FAILED: %s\n' "$*" >&2
    exit 1
}
trap 'fail "line $LINENO: $BASH_COMMAND"' ERR

# ---------------------------------------------------------------------------
step "1. tools"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
have_tools() {
    command -v aarch64-linux-gnu-gcc >/dev/null && [ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] &&
        { command -v qemu-aarch64-static || command -v qemu-aarch64; } >/dev/null && command -v zcat >/dev/null
}
if ! have_tools; then
    echo "  installing gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static gzip"
    $SUDO apt-get update -qq </dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static gzip </dev/null >/dev/null
    # Some releases ship qemu-aarch64 only in qemu-user.
    if ! command -v qemu-aarch64-static >/dev/null && ! command -v qemu-aarch64 >/dev/null; then
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user \
            </dev/null >/dev/null
    fi
    have_tools || fail "the aarch64 cross toolchain or qemu is still missing after apt-get install"
fi
grep -qx "$TARGET" <<<"$(rustup target list --installed)" || rustup target add "$TARGET" </dev/null
QEMU=$(command -v qemu-aarch64-static || command -v qemu-aarch64)
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$QEMU -L /usr/aarch64-linux-gnu"
echo "  $(rustc --version), $(aarch64-linux-gnu-gcc --version | head -1), $("$QEMU" --version | head -1)"

rm -rf "$OUT"
mkdir -p "$OUT"
for f in t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    gunzip -c "data/$f.gz" >"$OUT/$f"
done
export MICROVIT_TEST_IMAGES=$OUT/t10k-images-idx3-ubyte MICROVIT_TEST_LABELS=$OUT/t10k-labels-idx1-ubyte
# A cargo test run under qemu takes 3 to 10 minutes here.
TEST_LIMIT=${MICROVIT_QEMU_TEST_LIMIT:-2400}
CARGO_TEST=(cargo test -p microvit-engine --release --target "$TARGET")

# Runs cargo test with the remaining arguments, keeping the output in
# $OUT/NAME.log; prints the per-binary results, fails on any failed test.
run_tests() {
    local name=$1 log="$OUT/$1.log" rc=0
    shift
    timeout -k 10 "$TEST_LIMIT" "$@" </dev/null >"$log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        cat "$log" >&2
        [ "$rc" -ne 124 ] || fail "$name: no result after $TEST_LIMIT s, a hang under qemu? (log: $log)"
        fail "$name: tests failed (log: $log)"
    fi
    grep -E '^ +(Running|Doc-tests) ' "$log" | sed -E 's/^ +/  /; s/ \(.*//' >"$OUT/$name.binaries"
    grep -E '^test result: ' "$log" >"$OUT/$name.results"
    paste -d' ' "$OUT/$name.binaries" "$OUT/$name.results" |
        sed -E 's/test result: ok\. ([0-9]+) passed; ([0-9]+) failed; ([0-9]+) ignored;.*finished in ([0-9.]+s)/ok: \1 passed, \2 failed, \3 ignored (\4)/'
    awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "  total: %d passed, %d failed, %d ignored\n", p, f, i }' "$log"
}

# Fails unless the log shows the test passed.
passed() {
    grep -qxF "test $2 ... ok" "$OUT/$1.log" || fail "$1: '$2' did not run and pass"
}

# ---------------------------------------------------------------------------
step "2. build the engine's tests for $TARGET"
"${CARGO_TEST[@]}" --no-run --quiet </dev/null
harness=$(find "$TARGET_DIR/$TARGET/release/deps" -maxdepth 1 -name 'backends-*' -type f -perm -u+x -print -quit)
# ELF e_machine (offset 18, little-endian) 0xb7 is EM_AARCH64.
[ -n "$harness" ] && [ "$(od -An -tx1 -j18 -N2 "$harness" | tr -d ' ')" = b700 ] ||
    fail "no aarch64 build of tests/backends.rs in $TARGET_DIR/$TARGET/release/deps"

step "3. dotprod: every engine test under qemu -cpu max (default backend: dotprod)"
QEMU_CPU=max MICROVIT_EXPECT_BACKEND=dotprod run_tests dotprod "${CARGO_TEST[@]}"
passed dotprod detection_picks_the_backend_ci_expects
passed dotprod every_backend_reproduces_the_committed_int8_checksums
passed dotprod int8_backends_are_bit_exact_on_random_models
passed dotprod f16_backends_agree_on_random_models
passed dotprod every_backend_matches_scalar_f16_on_the_test_set
passed dotprod every_backend_matches_scalar_at_the_edges_of_the_family
passed dotprod seed_shape_inference_does_not_allocate
# Preprocessing of photos and drawings: the same input bytes as on x86-64,
# and its own crate's unit tests.
passed dotprod preprocessing_is_bit_identical_everywhere
QEMU_CPU=max run_tests preprocess cargo test -p microvit-preprocess --release --target "$TARGET"
echo "  dotprod, neon and scalar reproduce the committed int8 checksums: $(cat tests/fixtures/*.int8.logits.crc32c | tr '\n' ' ')"

step "4. neon: int8 tests under qemu -cpu cortex-a57 (no dot product: detection falls back to neon)"
QEMU_CPU=cortex-a57 MICROVIT_EXPECT_BACKEND=neon run_tests neon "${CARGO_TEST[@]}" --test backends --test no_alloc -- \
    detection_picks int8 batches edges does_not_allocate
passed neon detection_picks_the_backend_ci_expects
passed neon every_backend_reproduces_the_committed_int8_checksums
passed neon int8_backends_are_bit_exact_on_random_models
passed neon seed_shape_inference_does_not_allocate

step "5. instructions per digit under qemu -cpu max (benches/count.sh: a record, not a gate)"
for backend in dotprod neon; do
    line=$(benches/count.sh $backend </dev/null) || fail "benches/count.sh $backend failed"
    echo "$line" | grep -E -q "^int8 $backend on aarch64: [0-9]+\.[0-9] instructions a digit" ||
        fail "benches/count.sh $backend printed no count: $line"
    echo "  $line"
done

step "done: aarch64 engine tests pass under qemu (dotprod, neon and scalar) in $((SECONDS - start))s"
