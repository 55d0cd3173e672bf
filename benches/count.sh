#!/usr/bin/env bash
# benches/count.sh: instructions per digit of the seed model's int8 pass,
# the figure docs/BENCHMARKS.md compares commits by (it does not depend on
# the machine's load, unlike a time).
#
#   benches/count.sh avx2                 # x86-64, callgrind
#   benches/count.sh avx2 --blank         # the same on blank images
#   benches/count.sh dotprod              # aarch64, counted under qemu-aarch64 -cpu max
#   benches/count.sh neon --profile       # and where they go, per function
#
# Backends: scalar, avx2 (x86-64); scalar-aarch64, neon, dotprod (aarch64).
# avx512vnni and avxvnni cannot be counted here: neither valgrind 3.19 nor
# qemu 7.2 executes them.
#
# Method: run_digits classifies the first N test digits; the count of a
# run of 1,100 minus a run of 100, over 1,000 (scalar: 200 - 100, over
# 100), leaves out start-up and loading. On aarch64 qemu logs every guest instruction it executes
# (`-singlestep -d nochain,exec`): emulator counts, not timings.
# --profile maps the logged program counters (300 digits minus 100) to
# functions with nm; on x86-64 it runs under qemu-x86_64 too.
#
# Needs: valgrind (x86-64); the aarch64 rustup target, gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross and qemu-user-static (aarch64, and any --profile);
# python3 for --profile.
set -euo pipefail
export LC_ALL=C # sort and join agree on the order

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

backend=${1:-}
[ -n "$backend" ] || usage
shift
blank=false profile=false
for arg in "$@"; do
    case $arg in
    --blank) blank=true ;;
    --profile) profile=true ;;
    *) usage ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}
mkdir -p "$target_dir/count"

case $backend in
scalar | avx2) arch=x86_64 ;;
scalar-aarch64) arch=aarch64 backend=scalar ;;
neon | dotprod) arch=aarch64 ;;
*)
    echo "count.sh: no instruction count for backend '$backend' (scalar, avx2, scalar-aarch64, neon, dotprod)" >&2
    exit 2
    ;;
esac
need() { command -v "$1" >/dev/null || { echo "count.sh: needs $1 ($2)" >&2; exit 1; }; }

# The images, uncompressed: inflating the gzipped set at start-up would
# dwarf a few digits in qemu's log. A blank set: the same header, zeros.
images=$target_dir/count/t10k-images-idx3-ubyte
[ -s "$images" ] || gunzip -c data/t10k-images-idx3-ubyte.gz >"$images"
if $blank; then
    images=$target_dir/count/blank-images-idx3-ubyte
    # idx3 header: magic 0x803, 1100 images, 28 × 28 (big-endian u32s).
    { printf '\0\0\10\3\0\0\4\114\0\0\0\34\0\0\0\34'; head -c $((1100 * 784)) /dev/zero; } >"$images"
fi

if [ $arch = x86_64 ]; then
    [ "$(uname -m)" = x86_64 ] || { echo "count.sh: $backend needs an x86-64 host" >&2; exit 1; }
    cargo build --quiet --release -p microvit-benches --example run_digits
    bin=$target_dir/release/examples/run_digits
    qemu=(qemu-x86_64-static -cpu max)
    base=0x4000000000
    objdump=objdump
else
    need aarch64-linux-gnu-gcc "apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
    need qemu-aarch64-static "apt-get install qemu-user-static"
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
        cargo build --quiet --release -p microvit-benches --example run_digits --target aarch64-unknown-linux-gnu
    bin=$target_dir/aarch64-unknown-linux-gnu/release/examples/run_digits
    qemu=(qemu-aarch64-static -cpu max -L /usr/aarch64-linux-gnu)
    base=0x5500000000
    objdump=aarch64-linux-gnu-objdump
fi

# Instructions of a run of N digits.
count() {
    if [ $arch = x86_64 ]; then
        need valgrind "apt-get install valgrind"
        local out=$target_dir/count/callgrind.$1
        valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" int8 "$backend" "$1" "$images" >/dev/null 2>&1
        grep -m1 '^summary:' "$out" | awk '{print $2}'
    else
        "${qemu[@]}" -singlestep -d nochain,exec -D /dev/stderr "$bin" int8 "$backend" "$1" "$images" 2>&1 >/dev/null |
            grep -c '^Trace'
    fi
}
# The scalar pass is ~15 times the work: 200 - 100 digits, or qemu's log
# of it runs to gigabytes.
more=1000
[ "$backend" != scalar ] || more=100
a=$(count 100)
b=$(count $((100 + more)))
awk -v a="$a" -v b="$b" -v more="$more" -v what="int8 $backend on $arch$($blank && echo ', blank images')" \
    'BEGIN { printf "%s: %.1f instructions a digit ((%d - %d) / %d)\n", what, (b - a) / more, b, a, more }'

$profile || exit 0
need "${qemu[0]}" "apt-get install qemu-user-static"
# Per program counter, the executions of 300 digits minus 100, over 200.
pcs() {
    "${qemu[@]}" -singlestep -d nochain,exec -D /dev/stderr "$bin" int8 "$backend" "$1" "$images" 2>&1 >/dev/null |
        sed -nE 's/^Trace [^[]*\[[0-9a-f]+\/([0-9a-f]+)\/.*/\1/p' | sort | uniq -c | awk '{print $2, $1}' | sort
}
pcs 100 >"$target_dir/count/pc.100"
pcs 300 >"$target_dir/count/pc.300"
nm -C -S --defined-only "$bin" | awk '$2 ~ /^[0-9a-f]+$/' >"$target_dir/count/symbols"
join -a2 -e0 -o 0,1.2,2.2 "$target_dir/count/pc.100" "$target_dir/count/pc.300" >"$target_dir/count/pcs"
python3 - "$target_dir/count/symbols" "$target_dir/count/pcs" "$base" "$objdump -d $bin" <<'PY'
import bisect, sys
symbols = []
for line in open(sys.argv[1]):
    parts = line.split(None, 3)
    if len(parts) == 4:
        symbols.append((int(parts[0], 16), int(parts[1], 16), parts[3].strip()))
symbols.sort()
starts = [s[0] for s in symbols]
base, per_function = int(sys.argv[3], 16), {}
for line in open(sys.argv[2]):
    pc, before, after = line.split()
    n = (int(after) - int(before)) / 200
    if n <= 0:
        continue
    pc = int(pc, 16) - base
    i = bisect.bisect_right(starts, pc) - 1
    name = symbols[i][2] if i >= 0 and pc < symbols[i][0] + symbols[i][1] else hex(pc)
    per_function[name] = per_function.get(name, 0) + n
shown = [(name, n) for name, n in sorted(per_function.items(), key=lambda kv: -kv[1]) if n >= 0.5][:15]
for name, n in shown:
    print(f"{n:9.1f}  {name[:100]}")
print(f"{sum(per_function.values()) - sum(n for _, n in shown):9.1f}  elsewhere")
print(f"{sum(per_function.values()):9.1f}  in all (digits 100..300 under qemu; `{sys.argv[4]}` shows the instructions)")
PY
