#!/usr/bin/env bash
# ffi/install.sh: builds libmicrovit and installs it as C libraries are.
#
#   ffi/install.sh                                  # into /usr/local
#   ffi/install.sh --prefix "$HOME/.local"
#   DESTDIR=/tmp/stage ffi/install.sh --prefix /usr  # staged, for packagers
#   ffi/install.sh --prefix /opt/microvit --libdir lib64
#
# What lands where (docs/C_API.md, "Installing"):
#   PREFIX/include/microvit.h, microvit.hpp
#   LIBDIR/libmicrovit.a            only the microvit_* functions are global
#   LIBDIR/libmicrovit.so.VERSION   SONAME libmicrovit.so.0, links .so.0 and .so
#   LIBDIR/pkgconfig/microvit.pc
#   LIBDIR/cmake/microvit/          find_package(microvit) -> microvit::microvit
#
# The libraries are built with `cargo rustc --crate-type`, one crate type at
# a time: the package also builds an rlib (for its tests), and cargo drops
# LTO for every crate type when one of them cannot take it. They are built
# without Rust's std (`--no-default-features`, profile `c-lib`: LTO,
# panic = "abort"), over the C library: a third of the size, and an
# internal error aborts instead of returning MICROVIT_STATUS_PANIC
# (docs/C_API.md, "Sizes").
#
# Linux (ELF) hosts; needs cargo, and binutils' ld and objcopy for the
# static archive's symbols. Android and iOS: docs/C_API.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() {
    sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}
fail() {
    printf 'install.sh: %s\n' "$*" >&2
    exit 1
}

prefix=/usr/local
libdir=
while [ $# -gt 0 ]; do
    case $1 in
        --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
        --prefix=*) prefix=${1#*=}; shift ;;
        --libdir) libdir=${2:?--libdir needs a directory}; shift 2 ;;
        --libdir=*) libdir=${1#*=}; shift ;;
        -h | --help) usage ;;
        *) printf 'install.sh: unknown argument %s\n' "$1" >&2; usage 2 ;;
    esac
done
case $prefix in /*) ;; *) fail "--prefix must be an absolute path, not $prefix" ;; esac
libdir=${libdir:-lib}
case $libdir in /*) ;; *) libdir=$prefix/$libdir ;; esac
includedir=$prefix/include
for tool in cargo ld objcopy ar readelf; do
    command -v "$tool" >/dev/null || fail "$tool is missing (cargo: rustup; the others: binutils)"
done

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
[ -n "$version" ] || fail "no version in Cargo.toml's [workspace.package]"
abi=${version%%.*} # the SONAME's number: the C ABI's major version
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
release=$target_dir/c-lib # the profile's output directory
build=(cargo rustc -q -p microvit-ffi --profile c-lib --no-default-features)
work=$target_dir/c-install
rm -rf "$work"
mkdir -p "$work"

echo "==> building libmicrovit $version (release, LTO, without std)"
"${build[@]}" --crate-type staticlib -- --print native-static-libs \
    </dev/null 2>"$work/static.log" || { cat "$work/static.log" >&2; fail "cargo rustc (staticlib) failed"; }
# What a static link needs besides libmicrovit.a, as rustc reports it.
private_libs=$(sed -n 's/.*native-static-libs: //p' "$work/static.log" | tail -1)
cp "$release/libmicrovit.a" "$work/rust.a"
MICROVIT_SONAME=libmicrovit.so.$abi "${build[@]}" --crate-type cdylib \
    </dev/null || fail "cargo rustc (cdylib) failed"

echo "==> libmicrovit.a: one object, only microvit_* global"
# rustc's archive holds the Rust standard library's objects with global
# symbols (rust_eh_personality, alloc internals): a second Rust static
# library in the same program then fails to link. One relocatable object,
# unused sections dropped from the exported functions outward, every symbol
# but the API made local, keeps two such libraries apart.
exports=$(nm -g --defined-only "$work/rust.a" 2>/dev/null | awk '$3 ~ /^microvit_/ { print $3 }' | sort -u)
[ -n "$exports" ] || fail "no microvit_* symbols in the static library"
roots=()
for symbol in $exports; do roots+=(-u "$symbol"); done
ld -r --gc-sections "${roots[@]}" --whole-archive "$work/rust.a" -o "$work/microvit.o"
# The embedded LLVM bitcode goes too: it is of no use to a C linker, and
# binutils' LLVM plugin (LLVMgold of an older LLVM) aborts on it.
objcopy --wildcard --keep-global-symbol='microvit_*' --remove-section=.llvmbc --remove-section=.llvmcmd \
    "$work/microvit.o"
# A COMDAT group is kept once per program by its signature's name, local or
# not: a second Rust library's DW.ref.rust_eh_personality group would be
# dropped for ours, leaving its references to a symbol it cannot see.
groups=$(readelf -g "$work/microvit.o" | sed -n "s/^COMDAT group section .* \[\(.*\)\] contains.*/\1/p")
renames=()
for g in $groups; do renames+=(--redefine-sym "$g=microvit.$g"); done
[ ${#renames[@]} -eq 0 ] || objcopy "${renames[@]}" "$work/microvit.o"
ar crsD "$work/libmicrovit.a" "$work/microvit.o"

echo "==> installing into ${DESTDIR:-}$prefix"
d=${DESTDIR:-}
install -d "$d$includedir" "$d$libdir/pkgconfig" "$d$libdir/cmake/microvit"
install -m 644 include/microvit.h include/microvit.hpp "$d$includedir/"
install -m 644 "$work/libmicrovit.a" "$d$libdir/libmicrovit.a"
install -m 755 "$release/libmicrovit.so" "$d$libdir/libmicrovit.so.$version"
ln -sf "libmicrovit.so.$version" "$d$libdir/libmicrovit.so.$abi"
ln -sf "libmicrovit.so.$abi" "$d$libdir/libmicrovit.so"

# Paths relative to the .pc and CMake files, so a DESTDIR or a moved prefix
# still works.
rel_prefix=$(realpath -m --relative-to="$libdir/pkgconfig" "$prefix")
sed -e "s|@PREFIX@|\${pcfiledir}/$rel_prefix|" -e "s|@LIBDIR@|\${pcfiledir}/..|" -e "s|@VERSION@|$version|" \
    -e "s|@PRIVATE_LIBS@|$private_libs|" ffi/microvit.pc.in >"$d$libdir/pkgconfig/microvit.pc"
rel_prefix=$(realpath -m --relative-to="$libdir/cmake/microvit" "$prefix")
rel_libdir=$(realpath -m --relative-to="$libdir/cmake/microvit" "$libdir")
# CMake wants library names or paths, not -l flags.
cmake_libs=$(for l in $private_libs; do printf '%s;' "${l#-l}"; done)
sizeof_void_p=$(($(getconf LONG_BIT) / 8))
for f in microvit-config microvit-config-version; do
    sed -e "s|@REL_PREFIX@|$rel_prefix|" -e "s|@REL_LIBDIR@|$rel_libdir|" -e "s|@ABI@|$abi|" \
        -e "s|@VERSION@|$version|" -e "s|@PRIVATE_LIBS@|${cmake_libs%;}|" -e "s|@SIZEOF_VOID_P@|$sizeof_void_p|" \
        "ffi/cmake/$f.cmake.in" >"$d$libdir/cmake/microvit/$f.cmake"
done

for f in "$d$includedir"/microvit.h* "$d$libdir"/libmicrovit.* "$d$libdir"/pkgconfig/microvit.pc \
    "$d$libdir"/cmake/microvit/*.cmake; do
    echo "  ${f#"$d"}"
done
