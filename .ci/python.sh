#!/usr/bin/env bash
# .ci/python.sh: the Python package (bindings/python, pyo3 + maturin, abi3).
#
#   bash .ci/python.sh       # from anywhere in the repository; no stdin needed
#
# Installs what it lacks: python3-venv (apt) if `python3 -m venv` fails, and
# maturin, numpy and pytest from PyPI into a virtualenv, target/py-venv
# (never the system Python). Idempotent; the wheel goes to target/py-wheels,
# the extension's cargo build to bindings/python/target.
#
#  1. venv       target/py-venv with pinned maturin, numpy, pytest
#  2. lints      cargo fmt --check and clippy -D warnings on bindings/python
#                (its own Cargo project, outside the workspace)
#  3. wheel      maturin build --release: one abi3 wheel (CPython >= 3.9),
#                installed into the venv
#  4. CLI, C ABI the release CLI, for the cross-checks, and libmicrovit.so,
#                for step 6
#  5. pytest     bindings/python/tests: 95.40 % on the 10,000 test digits
#                (f16, f32, int8), logits and attention bit-identical to the
#                CLI's eval --logits-out and explain --attention-out, convert
#                byte-identical to the CLI's, the committed int8 checksum on
#                every backend, batch == single, errors with their messages
#  6. overhead   bench_overhead.py: classify / predict per call and per batch
#                against the C ABI's microvit_classify (looped in C, same
#                process, interleaved) and the engine's own time, printed;
#                a measurement, it fails only if the answers differ
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TERM_COLOR=never
start=$SECONDS
step() { printf '\n=== python [%4ds] %s\n' "$((SECONDS - start))" "$*"; }

MATURIN_VERSION=1.16.0
NUMPY_VERSION=2.4.6
PYTEST_VERSION=9.2.0
VENV=target/py-venv

step "1. venv: $VENV (maturin $MATURIN_VERSION, numpy $NUMPY_VERSION, pytest $PYTEST_VERSION)"
python3 --version
if [ ! -x "$VENV/bin/python" ]; then
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
fi
PY="$PWD/$VENV/bin/python"
"$PY" -m pip install -q --disable-pip-version-check \
  "maturin==$MATURIN_VERSION" "numpy==$NUMPY_VERSION" "pytest==$PYTEST_VERSION"
export PYO3_PYTHON="$PY"

step "2. lints: cargo fmt, clippy -D warnings (bindings/python)"
cargo fmt --manifest-path bindings/python/Cargo.toml --check
cargo clippy --manifest-path bindings/python/Cargo.toml --locked -- -D warnings

step "3. wheel: maturin build --release"
rm -rf target/py-wheels
"$VENV/bin/maturin" build --release --locked -m bindings/python/Cargo.toml -i "$PY" -o target/py-wheels
wheel=$(ls target/py-wheels/microvit-*-abi3-*.whl)
echo "$wheel ($(stat -c %s "$wheel") bytes)"
"$PY" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel"

step "4. CLI and C ABI: cargo build --release -p microvit-cli -p microvit-ffi"
cargo build --release -q -p microvit-cli -p microvit-ffi
cli="$(realpath "${CARGO_TARGET_DIR:-target}")/release/microvit"
ls -l "$cli" "$(dirname "$cli")/libmicrovit.so"

step "5. pytest bindings/python/tests"
# From the tests folder, so `import microvit` is the installed wheel.
(cd bindings/python/tests && MICROVIT_REQUIRE_CLI=1 MICROVIT_CLI="$cli" "$PY" -m pytest -q -p no:cacheprovider .)

step "6. overhead: Python calls against the C ABI's, same run"
"$PY" bindings/python/bench_overhead.py

step "done"
