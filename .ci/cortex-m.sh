#!/usr/bin/env bash
# The int8 engine on microcontrollers: builds microvit-engine `no_std`
# (lint-clean) and examples/cortex-m (no std, no heap) for Cortex-M4F and
# Cortex-M0, runs the firmware under QEMU (mps2-an386, microbit) and checks
# that every logit it prints equals the host's scalar int8 pass, bit for bit.
# Installs what it needs itself.
#
#   bash .ci/cortex-m.sh           the checks
#   bash .ci/cortex-m.sh --count   also instructions per digit (one
#                                  instruction per translation block, every
#                                  block logged; about a minute more)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
start=$SECONDS
step() { printf '\n=== [%4ds] cortex-m: %s\n' "$((SECONDS - start))" "$*"; }
count=false
[ "${1:-}" = "--count" ] && count=true

# target, QEMU machine, CPU
boards=(
  "thumbv7em-none-eabihf mps2-an386 cortex-m4"
  "thumbv6m-none-eabi microbit cortex-m0"
)
out=target/cortex-m
mkdir -p "$out"

step "install qemu-system-arm, arm-none-eabi binutils, the Rust targets"
if ! command -v qemu-system-arm >/dev/null || ! command -v arm-none-eabi-size >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-arm binutils-arm-none-eabi >/dev/null
fi
qemu-system-arm --version | head -1
for board in "${boards[@]}"; do
  set -- $board
  rustup target add "$1" >/dev/null 2>&1 || true
done

step "the committed digits are the first 16 of the MNIST test set"
cmp examples/cortex-m/digits.bin <(zcat data/t10k-images-idx3-ubyte.gz | tail -c +17 | head -c $((16 * 784)))
cmp examples/cortex-m/labels.bin <(zcat data/t10k-labels-idx1-ubyte.gz | tail -c +9 | head -c 16)

step "the engine builds no_std, with and without alloc and float, lint-clean"
for board in "${boards[@]}"; do
  set -- $board
  for features in "" alloc float alloc,float; do
    cargo clippy -q -p microvit-engine --no-default-features ${features:+--features "$features"} --target "$1" -- -D warnings
  done
done

step "an int8-only engine (no float feature) on the host: its unit tests, float blobs refused by name"
cargo test -q -p microvit-engine --no-default-features --features std --lib
(cd examples/cortex-m && cargo fmt --check)

step "host: the scalar int8 logits of the digits"
cargo run -q --release -p microvit-engine --example mcu_logits > "$out/host.txt"
cat "$out/host.txt"

for board in "${boards[@]}"; do
  set -- $board
  target=$1 machine=$2 cpu=$3
  elf=examples/cortex-m/target/$target/release/microvit-cortex-m
  step "$target: build, lint, run on QEMU $machine ($cpu)"
  (cd examples/cortex-m && cargo build -q --release --target "$target" &&
    cargo clippy -q --release --target "$target" -- -D warnings)
  # The firmware links no allocator: nothing of alloc may be in it.
  if arm-none-eabi-nm -C "$elf" | grep -E '__rust_alloc|__rg_alloc|alloc::alloc'; then
    echo "error: $elf links an allocator"
    exit 1
  fi
  qemu=(qemu-system-arm -machine "$machine" -cpu "$cpu" -nographic
    -semihosting-config enable=on,target=native -kernel "$elf")
  timeout 120 "${qemu[@]}" > "$out/$target.txt"
  cat "$out/$target.txt"
  grep -q '^correct 16/16$' "$out/$target.txt"
  diff <(grep '^digit' "$out/host.txt") <(grep '^digit' "$out/$target.txt")
  echo "logits of all 16 digits equal the host's"
  arm-none-eabi-size "$elf"
  # The budgets of issue #14: code (instruction bytes, the whole firmware)
  # at most 32 KiB; RAM besides the model (workspace and statics in .bss,
  # plus the most stack the firmware saw) at most 8 KiB.
  code=$(arm-none-eabi-objdump -d --section=.text "$elf" | awk -F'\t' '/^ +[0-9a-f]+:\t/ {
    n = split($2, h, " "); for (i = 1; i <= n; i++) if (h[i] ~ /^[0-9a-f]+$/) b += length(h[i]) / 2 } END { print b }')
  bss=$(arm-none-eabi-size -A "$elf" | awk '$1 == ".bss" { print $2 }')
  stack=$(sed -n 's/^stack \([0-9]*\) bytes at most$/\1/p' "$out/$target.txt")
  echo "code $code bytes (budget 32768); RAM: .bss $bss + stack $stack = $((bss + stack)) bytes (budget 8192)"
  [ "$code" -le 32768 ] || { echo "error: $target: code $code bytes is over 32 KiB"; exit 1; }
  [ $((bss + stack)) -le 8192 ] || { echo "error: $target: RAM $((bss + stack)) bytes is over 8 KiB"; exit 1; }

  if $count; then
    step "$target: instructions per digit"
    marker=$(arm-none-eabi-nm "$elf" | awk '/ inference_marker$/ { print $1 }')
    fifo=$(mktemp -u) && mkfifo "$fifo"
    timeout 600 "${qemu[@]}" -singlestep -d nochain,exec -D "$fifo" > /dev/null &
    # One logged block per instruction; the marker is hit before and after
    # each inference.
    awk -v m="$marker" -F'[][/]' '
      $3 == m { hits++; if (hits % 2 == 0) n += count; count = 0; next }
      { count++ }
      END { printf "%d inferences, %d instructions each\n", hits / 2, n / (hits / 2) }' "$fifo" |
      tee "$out/$target-count.txt"
    wait
    rm -f "$fifo"
  fi
done
step "done"
