#!/usr/bin/env bash
# .ci/ffi.sh: the checks of microvit's C ABI (libmicrovit, include/microvit.h).
#
#   bash .ci/ffi.sh          # from the repository root; no stdin needed
#
# Installs what it lacks (apt packages, rustup targets and llvm-tools, the
# pinned cbindgen), so the first run needs the network and root or sudo.
# Idempotent: everything it builds goes to target/ (outputs in target/ffi-ci/).
#
#  1. tools            apt packages, rustup targets, llvm-tools, cbindgen 0.29.4
#  2. header           regenerate include/microvit.h with cbindgen; fail on any diff
#  3. header compiles  microvit.h as C99/C11 and C++11..20, microvit.hpp as
#                      C++17/20, all with -Wall -Wextra -Werror -pedantic
#  4. cargo test       the Rust ABI tests (NULLs, garbage lengths, batch, panics,
#                      no allocation)
#  5. libraries        release libmicrovit.a + libmicrovit.so; exported symbols
#                      equal the header's functions, the .so exports nothing else
#  6. examples         C and C++ examples with gcc/g++ against the static and the
#                      shared library (Makefile), CMake, pkg-config (shared and
#                      static-only prefix); accuracy must equal the Rust engine's
#                      (tests/fixtures/microvit-seed.json), batch == per-image,
#                      every documented error status asserted (error_paths),
#                      a drawing pad's RGBA strokes classified (drawing_pad)
#  6b. installed       ffi/install.sh into a staging prefix; the examples built
#                      from it with pkg-config, CMake find_package and a plain
#                      compiler line (static and shared); the archive's only
#                      globals are the API; it links beside a second Rust library
#  7. valgrind         error_paths, classify (threads, PGM), drawing_pad and the C++ example:
#                      no errors, no definite/indirect leaks
#  8. aarch64          cross-built .a/.so, C examples under qemu-aarch64
#  9. mobile           ffi/mobile.sh: Android jniLibs/<abi>/ (arm64-v8a, armeabi-v7a,
#                      x86_64) and the iOS device archive, every header function
#                      present (llvm-nm)
# 10. sizes            the installed libraries are the no-std build (no std, no
#                      unwinder, no backtrace symbolizer); stripped .so and the
#                      static contribution to a linked program under their ceilings
set -euo pipefail
export CI=true
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CBINDGEN_VERSION=0.29.4
MODEL=models/microvit-seed.mvit
INT8_MODEL=models/microvit-seed.int8.mvit
OTHER_MODEL=models/microvit-4k.mvit # another shape, for workspace mismatches
FIXTURE=tests/fixtures/microvit-seed.json
TARGET_DIR=${CARGO_TARGET_DIR:-target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$PWD/$TARGET_DIR ;; esac
OUT=$TARGET_DIR/ffi-ci
LIB=$TARGET_DIR/release
ARM_LIB=$TARGET_DIR/aarch64-unknown-linux-gnu/release
# armv7-linux-androideabi: 32-bit, so the usize overflow checks compile there too.
MOBILE_TARGETS=(aarch64-linux-android armv7-linux-androideabi x86_64-linux-android aarch64-apple-ios)
CFLAGS_STRICT=(-Wall -Wextra -Werror -pedantic)
VALGRIND=(valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect)
QEMU=(qemu-aarch64-static -L /usr/aarch64-linux-gnu)

start=$SECONDS
step() { printf '\n==> [%3ds] %s\n' $((SECONDS - start)) "$*"; }
fail() {
    printf 'ffi.sh: FAILED: %s\n' "$*" >&2
    exit 1
}
trap 'fail "line $LINENO: $BASH_COMMAND"' ERR

# Runs a command (stdin closed), keeps its output in $OUT/logs/NAME.log, and
# fails unless the output contains every one of the given lines.
#   expect NAME 'line' ['line'...] -- command...
expect() {
    local name=$1 log="$OUT/logs/$1.log" wanted=() line
    shift
    while [ "$1" != -- ]; do
        wanted+=("$1")
        shift
    done
    shift
    if ! "$@" </dev/null >"$log" 2>&1; then
        cat "$log" >&2
        fail "$name: '$*' exited with an error"
    fi
    for line in "${wanted[@]}"; do
        grep -qxF -- "$line" "$log" || {
            cat "$log" >&2
            fail "$name: output lacks the line '$line'"
        }
    done
    printf '  ok  %-28s %s\n' "$name" "$(grep -m1 -E '^(accuracy|error_paths|digit|classify: )|: digit ' "$log" || true)"
}

# ---------------------------------------------------------------------------
step "1. tools"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
apt_packages=(gcc g++ make cmake pkg-config binutils gzip valgrind
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static)
missing=()
for p in "${apt_packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "  installing ${missing[*]}"
    $SUDO apt-get update -qq </dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        </dev/null >/dev/null
fi
installed_targets=$(rustup target list --installed)
for t in aarch64-unknown-linux-gnu "${MOBILE_TARGETS[@]}"; do
    grep -qx "$t" <<<"$installed_targets" || rustup target add "$t" </dev/null
done
grep -q '^llvm-tools' <<<"$(rustup component list --installed)" || rustup component add llvm-tools </dev/null
HOST=$(rustc -vV | sed -n 's/^host: //p')
NM="$(rustc --print sysroot)/lib/rustlib/$HOST/bin/llvm-nm" # reads what this rustc's LLVM writes
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if [ "$(cbindgen --version 2>/dev/null || true)" != "cbindgen $CBINDGEN_VERSION" ]; then
    cargo install cbindgen --version "$CBINDGEN_VERSION" --locked </dev/null
fi
echo "  $(cbindgen --version), $(rustc --version), $(gcc --version | head -1)"

rm -rf "$OUT"
mkdir -p "$OUT/logs" "$OUT/data"

# ---------------------------------------------------------------------------
step "2. header: regenerate include/microvit.h and compare"
header_was_clean=false
if git ls-files --error-unmatch include/microvit.h >/dev/null 2>&1 && git diff --quiet -- include/microvit.h; then
    header_was_clean=true
fi
cp include/microvit.h "$OUT/microvit.h.before" 2>/dev/null || : >"$OUT/microvit.h.before"
cbindgen --quiet --config ffi/cbindgen.toml --crate microvit-ffi --output include/microvit.h ffi </dev/null
if ! diff -u "$OUT/microvit.h.before" include/microvit.h; then
    fail "include/microvit.h is not what cbindgen generates from ffi/; the regenerated header is now in the working tree: review and commit it"
fi
if $header_was_clean; then
    git diff --exit-code -- include/microvit.h
fi
# The functions the header declares (declarations start in column 0).
grep -E '^[a-z].*[ *]microvit_[a-z0-9_]+\(' include/microvit.h | grep -oE 'microvit_[a-z0-9_]+\(' | tr -d '(' |
    sort -u >"$OUT/header-functions.txt"
n_functions=$(wc -l <"$OUT/header-functions.txt")
[ "$n_functions" -ge 20 ] || fail "found only $n_functions functions in include/microvit.h"
echo "  up to date; $n_functions functions"

# ---------------------------------------------------------------------------
step "3. header compiles as C and C++"
cat >"$OUT/header.c" <<'EOF'
#include "microvit.h"
#include "microvit.h" /* include guard */
static microvit_shape shape; /* zero-initialised */
int main(void) {
    return (int)microvit_get_backend() + (int)shape.classes + (int)MICROVIT_STATUS_OK;
}
EOF
cp "$OUT/header.c" "$OUT/header.cpp"
printf '#include "microvit.hpp"\n#include "microvit.hpp"\nint main() { return microvit::version().empty(); }\n' \
    >"$OUT/header_hpp.cpp"
for std in c99 c11 c17; do
    gcc -std=$std "${CFLAGS_STRICT[@]}" -Wstrict-prototypes -Wmissing-prototypes -Wundef -Iinclude \
        -c "$OUT/header.c" -o "$OUT/header-$std.o"
done
for std in c++11 c++14 c++17 c++20; do
    g++ -std=$std "${CFLAGS_STRICT[@]}" -Iinclude -c "$OUT/header.cpp" -o "$OUT/header-$std.o"
done
for std in c++17 c++20; do
    g++ -std=$std "${CFLAGS_STRICT[@]}" -Wshadow -Wconversion -Wsign-conversion -Iinclude \
        -c "$OUT/header_hpp.cpp" -o "$OUT/header_hpp-$std.o"
done
echo "  microvit.h: C99, C11, C17, C++11, C++14, C++17, C++20; microvit.hpp: C++17, C++20"

# ---------------------------------------------------------------------------
step "4. cargo test -p microvit-ffi"
if ! cargo test -p microvit-ffi --quiet </dev/null >"$OUT/logs/cargo-test.log" 2>&1; then
    cat "$OUT/logs/cargo-test.log" >&2
    fail "cargo test -p microvit-ffi"
fi
grep '^test result' "$OUT/logs/cargo-test.log" | sed 's/^/  /'

# ---------------------------------------------------------------------------
step "5. libraries: libmicrovit.a and libmicrovit.so, exported symbols"
cargo build -p microvit-ffi --release --quiet </dev/null
[ -f "$LIB/libmicrovit.a" ] && [ -f "$LIB/libmicrovit.so" ] || fail "no libmicrovit.a/.so in $LIB"

# Every header function is a defined global symbol of the library, and no
# other microvit_ symbol is. Mach-O symbols carry a leading underscore.
check_exports() {
    local lib=$1 dynamic=${2:-}
    "$NM" --defined-only -g --format=just-symbols $dynamic "$lib" 2>/dev/null | sed 's/^_//' |
        grep -E '^microvit_[a-z0-9_]+$' | sort -u >"$OUT/symbols.txt" || true
    if ! diff -u "$OUT/header-functions.txt" "$OUT/symbols.txt" >"$OUT/symbols.diff"; then
        cat "$OUT/symbols.diff" >&2
        fail "$lib: its microvit_* symbols differ from the header's functions"
    fi
    echo "  ok  ${lib#"$PWD"/}: all $n_functions functions"
}
check_exports "$LIB/libmicrovit.a"
check_exports "$LIB/libmicrovit.so" -D
others=$("$NM" -D --defined-only --format=just-symbols "$LIB/libmicrovit.so" | grep -v '^microvit_' || true)
[ -z "$others" ] || fail "libmicrovit.so exports symbols outside the API: $others"
readelf -d "$LIB/libmicrovit.so" | grep -q 'Library soname: \[libmicrovit.so\]' || fail "libmicrovit.so has no SONAME"

# ---------------------------------------------------------------------------
step "6. examples: static, shared, CMake, pkg-config"
gunzip -c data/t10k-images-idx3-ubyte.gz >"$OUT/data/images.idx"
gunzip -c data/t10k-labels-idx1-ubyte.gz >"$OUT/data/labels.idx"
IMAGES=$OUT/data/images.idx
LABELS=$OUT/data/labels.idx
# What the Rust engine gets on the full test set (the golden fixture).
correct=$(sed -n 's/.*"correct": *\([0-9]*\).*/\1/p' "$FIXTURE")
total=$(sed -n 's/.*"test_images": *\([0-9]*\).*/\1/p' "$FIXTURE")
[ -n "$correct" ] && [ -n "$total" ] || fail "cannot read the expected accuracy from $FIXTURE"
ACCURACY=$(awk -v c="$correct" -v t="$total" 'BEGIN { printf "accuracy: %.2f %% (%d/%d)", 100 * c / t, c, t }')
echo "  expected: $ACCURACY"
# The first test digit as a PGM and as raw pixels, with its label.
head -c $((16 + 784)) "$IMAGES" | tail -c 784 >"$OUT/data/digit0.raw"
{
    printf 'P5\n# MNIST test digit 0\n28 28\n255\n'
    cat "$OUT/data/digit0.raw"
} >"$OUT/data/digit0.pgm"
label0=$(od -An -tu1 -j8 -N1 "$LABELS" | tr -d ' ')
BATCH_OK="batch: identical to per-image results"

for link in static shared; do
    make -s -C examples LINK=$link BUILD="$OUT/$link" MICROVIT_LIB_DIR="$LIB" </dev/null
    for program in classify error_paths minimal drawing_pad classify_cpp; do
        if readelf -d "$OUT/$link/$program" | grep -q 'NEEDED.*libmicrovit'; then linked=shared; else linked=static; fi
        [ "$linked" = "$link" ] || fail "$link/$program is not linked to the $link library"
    done
    expect "c-$link" "$ACCURACY" "$BATCH_OK" -- "$OUT/$link/classify" "$MODEL" "$IMAGES" "$LABELS" --threads 2
    expect "cpp-$link" "$ACCURACY" "$BATCH_OK" -- "$OUT/$link/classify_cpp" "$MODEL" "$IMAGES" "$LABELS" --threads 2
    # What really runs: the f32 model is the scalar reference, whatever the CPU has.
    for log in c-$link cpp-$link; do
        grep -q "backend scalar; model $MODEL:" "$OUT/logs/$log.log" || fail "$log does not report the f32 model on scalar"
    done
    expect "error-paths-$link" -- "$OUT/$link/error_paths" "$MODEL" "$OTHER_MODEL"
    grep -qE '^error_paths: [0-9]+ checks passed$' "$OUT/logs/error-paths-$link.log" || fail "error_paths-$link"
    expect "drawing-pad-$link" "drawing_pad: ok" -- "$OUT/$link/drawing_pad" "$INT8_MODEL"
    expect "pgm-$link" -- "$OUT/$link/classify" "$MODEL" --pgm "$OUT/data/digit0.pgm"
    grep -q "digit0.pgm: digit $label0 " "$OUT/logs/pgm-$link.log" || fail "the PGM digit is not classified as $label0"
    "$OUT/$link/minimal" <"$OUT/data/digit0.raw" >"$OUT/logs/minimal-$link.log" # loads models/microvit-seed.mvit
    grep -qx "digit $label0" "$OUT/logs/minimal-$link.log" || fail "minimal ($link) did not classify the digit as $label0"
    echo "  ok  minimal-$link                 $(cat "$OUT/logs/minimal-$link.log")"
done
"$OUT/static/classify" "$MODEL" "$IMAGES" "$LABELS" --limit 1000 </dev/null >"$OUT/logs/c-static-1000.log"
ACCURACY_1000=$(grep '^accuracy:' "$OUT/logs/c-static-1000.log")

cmake -S examples -B "$OUT/cmake" -DMICROVIT_LIB_DIR="$LIB" -DCMAKE_BUILD_TYPE=Release </dev/null >"$OUT/logs/cmake.log"
cmake --build "$OUT/cmake" -j 2 </dev/null >>"$OUT/logs/cmake.log"
expect cmake "$ACCURACY_1000" "$BATCH_OK" -- "$OUT/cmake/classify" "$MODEL" "$IMAGES" "$LABELS" --limit 1000

# ---------------------------------------------------------------------------
step "6b. installed: ffi/install.sh, then pkg-config, CMake find_package, a plain compiler line"
# Staged as a packager would (DESTDIR); the .pc and CMake files are
# relocatable, so the staged tree is used where it lies.
stage=$OUT/stage
rm -rf "$stage"
DESTDIR=$stage bash ffi/install.sh --prefix /opt/microvit </dev/null >"$OUT/logs/install.log" 2>&1 ||
    { cat "$OUT/logs/install.log"; fail "ffi/install.sh failed"; }
root=$stage/opt/microvit
version=$(printf '%s' "$(sed -n 's/^#define MICROVIT_VERSION_\(MAJOR\|MINOR\|PATCH\) //p' include/microvit.h)" | tr '\n' .)
for f in include/microvit.h include/microvit.hpp lib/libmicrovit.a "lib/libmicrovit.so.$version" lib/libmicrovit.so.0 \
    lib/libmicrovit.so lib/pkgconfig/microvit.pc lib/cmake/microvit/microvit-config.cmake; do
    [ -e "$root/$f" ] || fail "ffi/install.sh did not install $f"
done
[ "$(readlink "$root/lib/libmicrovit.so.0")" = "libmicrovit.so.$version" ] || fail "libmicrovit.so.0 -> ?"
readelf -d "$root/lib/libmicrovit.so.0" | grep -q 'Library soname: \[libmicrovit.so.0\]' || fail "installed .so: SONAME"
# The installed archive: the header's functions, and no other global symbol.
check_exports "$root/lib/libmicrovit.a"
# (llvm-nm heads each archive member with a blank line and "member.o:".)
others=$("$NM" -g --defined-only --format=just-symbols "$root/lib/libmicrovit.a" 2>/dev/null |
    grep -v -e '^microvit_' -e '^$' -e ':$' || true)
[ -z "$others" ] || fail "installed libmicrovit.a has global symbols outside the API: $(head -5 <<<"$others")"

mkdir -p "$OUT/installed"
# A static-only copy of the prefix: pkg-config --static and CMake's static target.
static_root=$OUT/static-prefix
rm -rf "$static_root" && cp -a "$root" "$static_root" && rm "$static_root"/lib/libmicrovit.so*
for kind in shared static; do
    r=$root static_flag=
    [ $kind = shared ] || { r=$static_root; static_flag=--static; }
    export PKG_CONFIG_PATH=$r/lib/pkgconfig
    [ "$(pkg-config --modversion microvit)" = "$version" ] || fail "pkg-config --modversion"
    # shellcheck disable=SC2046 # word splitting of pkg-config output is intended
    gcc -std=c99 "${CFLAGS_STRICT[@]}" -O2 examples/c/classify.c -o "$OUT/installed/pc-$kind" \
        $(pkg-config --cflags $static_flag --libs microvit) -lpthread -Wl,-rpath,"$r/lib"
    unset PKG_CONFIG_PATH
    expect "pkg-config-$kind" "$ACCURACY_1000" -- "$OUT/installed/pc-$kind" "$MODEL" "$IMAGES" "$LABELS" --limit 1000

    shared_flag=OFF
    [ $kind = static ] || shared_flag=ON
    cmake -S examples -B "$OUT/cmake-pkg-$kind" -DMICROVIT_FROM_PACKAGE=ON -DMICROVIT_SHARED=$shared_flag \
        -DCMAKE_PREFIX_PATH="$root" -DCMAKE_BUILD_TYPE=Release </dev/null >"$OUT/logs/cmake-pkg-$kind.log"
    cmake --build "$OUT/cmake-pkg-$kind" -j 2 </dev/null >>"$OUT/logs/cmake-pkg-$kind.log"
    expect "cmake-find-package-$kind" "$ACCURACY_1000" "$BATCH_OK" -- \
        "$OUT/cmake-pkg-$kind/classify" "$MODEL" "$IMAGES" "$LABELS" --limit 1000
    expect "cmake-find-package-cpp-$kind" "$BATCH_OK" -- \
        "$OUT/cmake-pkg-$kind/classify_cpp" "$MODEL" "$IMAGES" "$LABELS" --limit 300
done
for program in "$OUT/installed/pc-shared" "$OUT/cmake-pkg-shared/classify"; do
    readelf -d "$program" | grep -q 'NEEDED.*\[libmicrovit.so.0\]' || fail "$program does not record libmicrovit.so.0"
done
# The plain compiler lines of docs/C_API.md.
gcc -std=c99 -O2 examples/c/classify.c -I"$root/include" "$root/lib/libmicrovit.a" -lpthread -ldl -lm \
    -o "$OUT/installed/plain-static"
expect plain-static "$ACCURACY_1000" -- "$OUT/installed/plain-static" "$MODEL" "$IMAGES" "$LABELS" --limit 1000
gcc -std=c99 -O2 examples/c/classify.c -I"$root/include" -L"$root/lib" -lmicrovit -Wl,-rpath,"$root/lib" \
    -o "$OUT/installed/plain-shared"
expect plain-shared "$ACCURACY_1000" -- "$OUT/installed/plain-shared" "$MODEL" "$IMAGES" "$LABELS" --limit 1000
# The installed library has no std, so its own run-time CPU detection: an
# int8 model must get a SIMD backend where the CPU has AVX2 (the engine's
# test cpu::tests::same_answers_as_std holds the detection to std's).
if grep -qw avx2 /proc/cpuinfo; then
    expect installed-detection -- "$OUT/installed/plain-shared" "$INT8_MODEL" "$IMAGES" "$LABELS" --limit 10
    grep -qE 'backend (avx2|avxvnni|avx512vnni);' "$OUT/logs/installed-detection.log" ||
        fail "the installed library runs int8 on scalar on an AVX2 CPU: $(head -1 "$OUT/logs/installed-detection.log")"
fi

# Two Rust static libraries in one C program: rustc's own archives both
# define the standard library (rust_eh_personality, std internals), so the
# link fails with "multiple definition" once the second one is built another
# way (LTO here; another toolchain does it too). The installed archive keeps
# all of that local.
rustc -O -C lto --edition 2021 --crate-type staticlib ffi/link-test/second.rs \
    -o "$OUT/installed/libsecond.a" </dev/null
for lib in "$root/lib/libmicrovit.a" "$LIB/libmicrovit.a"; do
    name=installed
    [ "$lib" = "$root/lib/libmicrovit.a" ] || name=rustc-archive
    if gcc -std=c99 "${CFLAGS_STRICT[@]}" ffi/link-test/two_rust_libraries.c -I"$root/include" "$lib" \
        "$OUT/installed/libsecond.a" -lpthread -ldl -lm -o "$OUT/installed/two-$name" >"$OUT/logs/two-$name.log" 2>&1; then
        linked=yes
    else
        linked=no
    fi
    if [ $name = installed ]; then
        [ $linked = yes ] || { cat "$OUT/logs/two-$name.log"; fail "libmicrovit.a and a second Rust library do not link"; }
        expect two-rust-libraries "two Rust libraries: ok" -- "$OUT/installed/two-$name" "$INT8_MODEL"
    else
        # The control: shows what the installed archive avoids (informative).
        echo "      control: rustc's own libmicrovit.a with the same second library links: $linked"
    fi
done

# ---------------------------------------------------------------------------
step "7. valgrind"
expect valgrind-errors-static -- "${VALGRIND[@]}" "$OUT/static/error_paths" "$MODEL" "$OTHER_MODEL"
expect valgrind-errors-shared -- "${VALGRIND[@]}" "$OUT/shared/error_paths" "$MODEL" "$OTHER_MODEL"
expect valgrind-classify "$ACCURACY_1000" "$BATCH_OK" -- \
    "${VALGRIND[@]}" "$OUT/static/classify" "$MODEL" "$IMAGES" "$LABELS" --limit 1000 --threads 2
expect valgrind-pgm -- "${VALGRIND[@]}" "$OUT/shared/classify" "$MODEL" --pgm "$OUT/data/digit0.pgm"
expect valgrind-drawing-pad "drawing_pad: ok" -- "${VALGRIND[@]}" "$OUT/static/drawing_pad" "$INT8_MODEL"
expect valgrind-bad-model -- sh -c "! ${VALGRIND[*]} $OUT/static/classify $OUT/data/digit0.pgm --pgm $OUT/data/digit0.pgm"
grep -q 'status 5' "$OUT/logs/valgrind-bad-model.log" || fail "loading a non-model did not report INVALID_MODEL"
expect valgrind-cpp "$BATCH_OK" -- \
    "${VALGRIND[@]}" "$OUT/shared/classify_cpp" "$MODEL" "$IMAGES" "$LABELS" --limit 300 --threads 2

# ---------------------------------------------------------------------------
step "8. aarch64-unknown-linux-gnu: cross build, run under qemu"
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    cargo build -p microvit-ffi --release --quiet --target aarch64-unknown-linux-gnu </dev/null
check_exports "$ARM_LIB/libmicrovit.a"
check_exports "$ARM_LIB/libmicrovit.so" -D
for link in static shared; do
    make -s -C examples CC=aarch64-linux-gnu-gcc LINK=$link BUILD="$OUT/aarch64-$link" MICROVIT_LIB_DIR="$ARM_LIB" \
        "$OUT/aarch64-$link/classify" "$OUT/aarch64-$link/error_paths" "$OUT/aarch64-$link/drawing_pad" </dev/null
    file -L "$OUT/aarch64-$link/classify" | grep -q 'ARM aarch64' || fail "aarch64-$link/classify is not an aarch64 binary"
done
expect qemu-c-static "$ACCURACY" "$BATCH_OK" -- \
    "${QEMU[@]}" "$OUT/aarch64-static/classify" "$MODEL" "$IMAGES" "$LABELS" --threads 2
expect qemu-error-paths-static -- "${QEMU[@]}" "$OUT/aarch64-static/error_paths" "$MODEL" "$OTHER_MODEL"
expect qemu-c-shared "$ACCURACY_1000" -- \
    "${QEMU[@]}" "$OUT/aarch64-shared/classify" "$MODEL" "$IMAGES" "$LABELS" --limit 1000
expect qemu-error-paths-shared -- "${QEMU[@]}" "$OUT/aarch64-shared/error_paths" "$MODEL" "$OTHER_MODEL"
# The image path on aarch64: the same strokes, the same answers and inputs.
expect qemu-drawing-pad "drawing_pad: ok" -- "${QEMU[@]}" "$OUT/aarch64-static/drawing_pad" "$INT8_MODEL"
# (Probabilities aside: they come from the platform's expf.)
strip_probs() { sed 's/ ([0-9.]* %)//' "$1"; }
[ "$(strip_probs "$OUT/logs/drawing-pad-static.log")" = "$(strip_probs "$OUT/logs/qemu-drawing-pad.log")" ] ||
    fail "drawing_pad prints other inputs under qemu-aarch64 than on x86-64"

# ---------------------------------------------------------------------------
step "9. mobile: ffi/mobile.sh android and ios (static libraries; no NDK or Xcode here)"
for platform in android ios; do
    env -u ANDROID_NDK_HOME bash ffi/mobile.sh $platform </dev/null >"$OUT/logs/mobile-$platform.log" 2>&1 ||
        { cat "$OUT/logs/mobile-$platform.log"; fail "ffi/mobile.sh $platform failed"; }
done
for lib in android/jniLibs/arm64-v8a android/jniLibs/armeabi-v7a android/jniLibs/x86_64 ios/device; do
    check_exports "$TARGET_DIR/mobile/$lib/libmicrovit.a"
    printf '      %-28s %9d bytes\n' "$lib/libmicrovit.a" "$(stat -c %s "$TARGET_DIR/mobile/$lib/libmicrovit.a")"
done
for f in android/include/microvit.h ios/include/microvit.h ios/include/module.modulemap; do
    [ -f "$TARGET_DIR/mobile/$f" ] || fail "ffi/mobile.sh did not write $f"
done

# ---------------------------------------------------------------------------
step "10. sizes: the no-std build, and its ceilings"
# The installed libraries are built without std (ffi/install.sh): nothing of
# std, of its backtrace symbolizer (gimli, addr2line) or of unwinding may be
# in them. Mangled names: legacy _ZN3std, v0 ..3std.
lib_so=$root/lib/libmicrovit.so.$version
if "$NM" "$lib_so" | grep -E -q '_ZN3std|[0-9]std[0-9_]|gimli|addr2line|miniz_oxide|rustc_demangle'; then
    fail "the installed libmicrovit.so contains the Rust standard library: $("$NM" -C "$lib_so" | grep -E 'std::|gimli' | head -3)"
fi
if "$NM" -D --undefined-only "$lib_so" | grep -E -q 'rust_eh_personality|_Unwind_'; then
    fail "the installed libmicrovit.so needs an unwinder: $("$NM" -D --undefined-only "$lib_so" | grep -E 'rust_eh|_Unwind')"
fi
# (The archive's symbol table may keep an unused undefined entry from the
# partial link: what counts is a relocation that refers to one.)
if readelf -rW "$root/lib/libmicrovit.a" | grep -E -q 'rust_eh_personality|_Unwind_'; then
    fail "the installed libmicrovit.a needs an unwinder"
fi
echo "  ok  no std, no unwinder in the installed libraries"
# Ceilings: what this build measures (docs/C_API.md, "Sizes") plus ~3 %, so a
# regression fails here; below issue #15's goal of 250,000 bytes.
MAX_SO=248000
MAX_STATIC=207000
# The installed libraries (what users get: LTO, the clean archive). The
# stripped shared library, and what the static library adds to a linked C
# program: (example linked statically - trivial C program), both stripped,
# with and without --gc-sections (the Makefile and CMake use it).
strip -o "$OUT/libmicrovit.so.stripped" "$root/lib/libmicrovit.so.$version"
printf 'int main(void) { return 0; }\n' >"$OUT/trivial.c"
size_of() { stat -c %s "$1"; }
: >"$OUT/sizes.txt"
for gc in "" -Wl,--gc-sections; do
    for program in trivial classify minimal; do
        source=examples/c/$program.c
        [ $program != trivial ] || source=$OUT/trivial.c
        gcc -std=c99 -O2 -Iinclude "$source" -o "$OUT/size-$program" "$root/lib/libmicrovit.a" -lpthread -ldl -lm $gc
        strip "$OUT/size-$program"
    done
    trivial=$(size_of "$OUT/size-trivial")
    for program in classify minimal; do
        n=$(size_of "$OUT/size-$program")
        printf '%-62s %8d bytes (%d - %d)\n' "static $program example - trivial C program${gc:+ (--gc-sections)}:" \
            $((n - trivial)) "$n" "$trivial" | tee -a "$OUT/sizes.txt"
    done
done
so_size=$(size_of "$OUT/libmicrovit.so.stripped")
printf '%-62s %8d bytes\n' "libmicrovit.so, stripped:" "$so_size" | tee -a "$OUT/sizes.txt"
[ "$so_size" -le "$MAX_SO" ] || fail "libmicrovit.so is $so_size bytes stripped, over its ceiling of $MAX_SO"
# (the last two lines measured: classify, minimal with --gc-sections)
while read -r n; do
    [ "$n" -le "$MAX_STATIC" ] || fail "the static library adds $n bytes to a program, over its ceiling of $MAX_STATIC"
done < <(grep -- '--gc-sections' "$OUT/sizes.txt" | awk '{ for (i = 1; i <= NF; i++) if ($(i + 1) == "bytes") { print $i; break } }')

step "all C ABI checks passed in $((SECONDS - start)) s"
