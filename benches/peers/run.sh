#!/usr/bin/env bash
# microvit against ONNX Runtime (f32 and its static int8 QDQ quantisation),
# tract and PyTorch eager: the same seed model, the same 10,000 MNIST test
# digits, one thread each, in one run. From a fresh clone:
#
#     benches/peers/run.sh [SECONDS]
#
# SECONDS (default 3) is `microvit bench --seconds`, the measuring time of
# each microvit run. Needs python3 (3.10+, with venv) and a Rust toolchain;
# the first run creates benches/peers/.venv from requirements.txt (PyPI,
# about 2 GB with torch's CUDA libraries, a few minutes) and builds tract.
# Everything it makes goes to target/peers/ (PEERS_OUT to change); the table
# is printed last and written to target/peers/peers.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${PEERS_OUT:-$repo/target/peers}
seconds=${1:-3}
venv=$here/.venv
mkdir -p "$out"
cd "$repo"

say() { printf '\n== %s\n' "$*" >&2; }

# One thread for every engine, whatever the libraries would pick themselves.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

if [ ! -x "$venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$venv/requirements.installed"; then
    say "creating $venv from benches/peers/requirements.txt"
    start=$(date +%s)
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --disable-pip-version-check --quiet -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$venv/requirements.installed"
    echo "venv installed in $(($(date +%s) - start)) s" >&2
fi

say "building microvit and the tract peer (release)"
cargo build --release --quiet -p microvit-cli
CARGO_TARGET_DIR="$repo/target/peers-tract" cargo build --release --quiet --manifest-path "$here/tract/Cargo.toml"

say "exporting the seed model to ONNX, quantising it with ONNX Runtime"
"$venv/bin/python" "$here/peers.py" export "$out" 2> "$out/export.log" || { cat "$out/export.log" >&2; exit 1; }
grep -iE 'failed|fall' "$out/export.log" >&2 || true

say "microvit bench --json --batch 10000 --seconds $seconds"
cargo run --release --quiet -p microvit-cli -- bench --json --batch 10000 --seconds "$seconds" > "$out/microvit.json"

say "tract"
"$repo/target/peers-tract/release/microvit-peer-tract" \
    "$out/microvit-seed.b1.onnx" "$out/microvit-seed.dyn.onnx" "$out/test-images.f32" "$out/test-labels.u8" \
    > "$out/tract.json"

say "ONNX Runtime and PyTorch, then the table"
{
    echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc --all) cores; $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "load average (1, 5, 15 min) as the peers start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "command: benches/peers/run.sh $seconds"
    echo
} | tee "$out/header.txt"
status=0
"$venv/bin/python" "$here/peers.py" bench "$out" || status=$?
cat "$out/header.txt" "$out/peers.md" > "$out/peers.full.md" 2>/dev/null || true
exit $status
