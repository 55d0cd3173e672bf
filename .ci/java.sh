#!/usr/bin/env bash
# .ci/java.sh: the Java/JNI binding (bindings/java: dev.microvit.Model and
# libmicrovit_jni.so).
#
#   bash .ci/java.sh       # from anywhere in the repository; no stdin needed
#
# Installs what it lacks: a JDK (openjdk-17-jdk-headless from apt) when
# javac is missing. No Maven, Gradle or JUnit: javac, and a plain test
# runner that exits non-zero on a failure. The classes and the jar go to
# target/java. The crate is a workspace member, so .ci/run's clippy (x86-64,
# aarch64, Android armv7, i686) and cargo test cover its Rust.
#
#  1. JDK        javac and java, 8+ (the sources are compiled for Java 8,
#                the language level Android builds take)
#  2. native     cargo build --release -p microvit-jni (libmicrovit_jni.so)
#                and the release CLI for the cross-checks; the SONAME, and a
#                Java_dev_microvit_Model_* symbol for every native method
#  3. classes    javac -Werror -Xlint:all, then target/java/microvit.jar; the
#                Rust signatures (bindings/java/src/lib.rs) against the JNI
#                header javac -h writes for Model.java: same types, in order
#  4. tests      ModelTest under -Xcheck:jni (the VM checks every JNI call):
#                95.40 % on the 10,000 test digits (f16, f32, int8), logits
#                and attention bit-identical to the CLI's, single == batch,
#                photos (data/realistic's PNG/PGM/PPM: the CLI's classes and
#                inputs), every error status, use after close, threads, and
#                100,000 load/classify/close cycles with RSS flat
#  5. overhead   Java classify per call and per batch against the C ABI's own
#                time (timed inside Rust), printed
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TERM_COLOR=never
start=$SECONDS
step() { printf '\n=== java [%4ds] %s\n' "$((SECONDS - start))" "$*"; }

step "1. JDK"
if ! command -v javac >/dev/null || ! command -v java >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless >/dev/null
fi
javac -version
java -version 2>&1 | head -1

step "2. native: cargo build --release -p microvit-jni -p microvit-cli"
cargo build --release -q -p microvit-jni -p microvit-cli
target_dir=$(realpath "${CARGO_TARGET_DIR:-target}")
lib=$target_dir/release/libmicrovit_jni.so
cli=$target_dir/release/microvit
ls -l "$lib"
readelf -d "$lib" | grep -q 'Library soname: \[libmicrovit_jni.so\]' || { echo "SONAME is not libmicrovit_jni.so" >&2; exit 1; }
natives=$(grep -o 'native [a-z]*[][]* n[A-Za-z]*(' bindings/java/java/dev/microvit/Model.java | sed 's/.* \(n[A-Za-z]*\)(/\1/' | sort)
exported=$(nm -D --defined-only "$lib" | sed -n 's/.* T Java_dev_microvit_Model_//p' | sort)
if [ "$natives" != "$exported" ]; then
  echo "native methods and exported symbols differ:" >&2
  diff <(echo "$natives") <(echo "$exported") >&2 || true
  exit 1
fi
echo "$(echo "$natives" | wc -l) native methods, each exported"

step "3. classes: javac --release 8 -Werror -Xlint:all, target/java/microvit.jar"
rm -rf target/java
mkdir -p target/java/classes target/java/test-classes
javac --release 8 -Werror -Xlint:all,-options -d target/java/classes -h target/java/jni \
  bindings/java/java/dev/microvit/*.java
# The Rust signatures against the C header javac generates for the native
# methods: name, return type and parameter types, one line each.
header_sigs() {
  awk '/JNIEXPORT/ { ret = $2; name = $NF; getline; gsub(/[();]/, ""); gsub(/^ +/, ""); gsub(/JNIEnv \*/, "JNIEnv")
    gsub(/, /, ","); print name "(" ret ";" $0 ")" }' "$1" | sort
}
rust_sigs() {
  tr '\n' ' ' <"$1" | grep -o 'pub extern "system" fn Java_[A-Za-z_]*([^{]*' |
    sed -E 's/pub extern "system" fn //; s/ +/ /g; s/\( /(/; s/,? ?\) ?(-> ?([A-Za-z]+))? ?$/) \2/' |
    awk '{ name = substr($0, 1, index($0, "(") - 1); rest = substr($0, index($0, "(") + 1)
      ret = rest; sub(/.*\) ?/, "", ret); if (ret == "") ret = "void"; sub(/\).*/, "", rest)
      n = split(rest, p, ","); out = ""
      for (i = 1; i <= n; i++) { t = p[i]; sub(/.*: */, "", t); gsub(/ /, "", t); if (t == "Env") t = "JNIEnv"; out = out (i > 1 ? "," : "") t }
      print name "(" ret ";" out ")" }' | sort
}
if ! diff <(header_sigs target/java/jni/dev_microvit_Model.h) <(rust_sigs bindings/java/src/lib.rs); then
  echo "the Rust JNI functions (>) differ from the native methods of Model.java (<)" >&2
  exit 1
fi
echo "$(header_sigs target/java/jni/dev_microvit_Model.h | wc -l) JNI signatures match Model.java's native methods"
javac --release 8 -Werror -Xlint:all,-options -cp target/java/classes -d target/java/test-classes \
  bindings/java/javatest/dev/microvit/*.java
jar cf target/java/microvit.jar -C target/java/classes .
ls -l target/java/microvit.jar

# A fixed, pre-touched Java heap: RSS then moves with native memory only.
JAVA=(java -Xms256m -Xmx256m -XX:+AlwaysPreTouch -Dmicrovit.jni.path="$lib" -Dmicrovit.repo=. -Dmicrovit.cli="$cli"
  -cp target/java/classes:target/java/test-classes)

step "4. tests: dev.microvit.ModelTest (-Xcheck:jni)"
"${JAVA[@]}" -Xcheck:jni dev.microvit.ModelTest

step "5. overhead: Java calls against the C ABI's own time"
"${JAVA[@]}" dev.microvit.Overhead

step "done"
