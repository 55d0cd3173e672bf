#!/usr/bin/env bash
# ffi/mobile.sh: libmicrovit for Android and iOS apps, laid out as their
# builds expect it.
#
#   ffi/mobile.sh android     # target/mobile/android/jniLibs/<abi>/libmicrovit.{a,so}
#                             # (+ libmicrovit_jni.so), include/, java/ (dev.microvit)
#   ffi/mobile.sh ios         # target/mobile/ios/: device and simulator archives, headers with a
#                             # module map, and Microvit.xcframework where xcodebuild exists
#
# Android: static libraries for arm64-v8a, armeabi-v7a and x86_64 need only
# rustup. The shared libraries need the NDK's clang: set ANDROID_NDK_HOME
# (and ANDROID_API, default 24); they are linked for 16 KB pages
# (-z max-page-size=16384), which Android 15+ devices may use. They include
# libmicrovit_jni.so, the native half of the Java binding (bindings/java),
# whose Java sources are copied to java/ (bindings/java/README.md).
#
# iOS: the device archive (aarch64-apple-ios) builds anywhere; the
# simulator archives and the XCFramework need a Mac with Xcode.
#
# Every archive is built with LTO and without std (cargo rustc --profile c-lib
# --no-default-features --crate-type, as
# ffi/install.sh explains). docs/C_API.md, "Mobile", says how apps use them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail() {
    printf 'mobile.sh: %s\n' "$*" >&2
    exit 1
}
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
out=$target_dir/mobile

# staticlib TRIPLE: builds target/TRIPLE/c-lib/libmicrovit.a (no platform
# linker needed).
staticlib() {
    rustup target list --installed | grep -qx "$1" || rustup target add "$1" </dev/null
    cargo rustc -q -p microvit-ffi --profile c-lib --no-default-features --target "$1" --crate-type staticlib </dev/null
}

headers() {
    mkdir -p "$1"
    cp include/microvit.h include/microvit.hpp "$1/"
}

android() {
    local api=${ANDROID_API:-24} host_tag=linux-x86_64 abi triple clang
    [ "$(uname -s)" != Darwin ] || host_tag=darwin-x86_64
    rm -rf "$out/android"
    headers "$out/android/include"
    for abi in arm64-v8a armeabi-v7a x86_64; do
        case $abi in
            arm64-v8a) triple=aarch64-linux-android clang=aarch64-linux-android ;;
            armeabi-v7a) triple=armv7-linux-androideabi clang=armv7a-linux-androideabi ;;
            x86_64) triple=x86_64-linux-android clang=x86_64-linux-android ;;
        esac
        mkdir -p "$out/android/jniLibs/$abi"
        staticlib "$triple"
        cp "$target_dir/$triple/c-lib/libmicrovit.a" "$out/android/jniLibs/$abi/"
        if [ -n "${ANDROID_NDK_HOME:-}" ]; then
            local linker=$ANDROID_NDK_HOME/toolchains/llvm/prebuilt/$host_tag/bin/$clang$api-clang
            [ -x "$linker" ] || fail "no NDK clang at $linker (ANDROID_NDK_HOME, ANDROID_API)"
            local var
            var=CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$triple")_LINKER
            env "$var=$linker" cargo rustc -q -p microvit-ffi --profile c-lib --no-default-features --target "$triple" \
                --crate-type cdylib \
                -- -C link-arg=-Wl,-z,max-page-size=16384 </dev/null
            cp "$target_dir/$triple/c-lib/libmicrovit.so" "$out/android/jniLibs/$abi/"
            # The JNI library: release profile, with std, so that a panic is
            # caught and thrown as MicrovitException rather than abort the
            # app (its build.rs sets the SONAME and 16 KB pages).
            env "$var=$linker" cargo build -q -p microvit-jni --release --target "$triple" </dev/null
            cp "$target_dir/$triple/release/libmicrovit_jni.so" "$out/android/jniLibs/$abi/"
        fi
    done
    mkdir -p "$out/android/java"
    cp -r bindings/java/java/dev "$out/android/java/"
    [ -n "${ANDROID_NDK_HOME:-}" ] || echo "ANDROID_NDK_HOME is not set: static libraries only"
    find "$out/android" -type f | sort | sed "s|^$target_dir/|  target/|"
}

ios() {
    local t
    rm -rf "$out/ios"
    headers "$out/ios/include"
    printf 'module Microvit {\n    header "microvit.h"\n    export *\n}\n' >"$out/ios/include/module.modulemap"
    staticlib aarch64-apple-ios
    mkdir -p "$out/ios/device"
    cp "$target_dir/aarch64-apple-ios/c-lib/libmicrovit.a" "$out/ios/device/"
    if command -v xcodebuild >/dev/null && command -v lipo >/dev/null; then
        for t in aarch64-apple-ios-sim x86_64-apple-ios; do staticlib "$t"; done
        mkdir -p "$out/ios/simulator"
        lipo -create "$target_dir"/{aarch64-apple-ios-sim,x86_64-apple-ios}/c-lib/libmicrovit.a \
            -output "$out/ios/simulator/libmicrovit.a"
        xcodebuild -create-xcframework \
            -library "$out/ios/device/libmicrovit.a" -headers "$out/ios/include" \
            -library "$out/ios/simulator/libmicrovit.a" -headers "$out/ios/include" \
            -output "$out/ios/Microvit.xcframework" >/dev/null
    else
        echo "no xcodebuild/lipo (not a Mac with Xcode): the device archive only, no XCFramework"
    fi
    find "$out/ios" -type f | sort | sed "s|^$target_dir/|  target/|"
}

case ${1:-} in
    android) android ;;
    ios) ios ;;
    *) sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
