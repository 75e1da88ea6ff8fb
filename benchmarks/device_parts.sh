#!/usr/bin/env bash
# Split data too large for one device call into parts that each fit one call (run here).
#
#   bash benchmarks/device_parts.sh FILE...            # e.g. ~/.cache/mopo_kit/datasets/hopper-mixed-*.hdf5
#   PARTS_FIRST_MB=20 PARTS_MB=30 bash benchmarks/device_parts.sh FILE...   # sizes by hand
#
# A device call sends at most 64 MiB: the tracked tree (~31 MB) plus every carried path, and a
# carried folder that the next call does not name is gone from that machine by then (measured
# 2026-11-27, docs/performance.md). So the files go as one tar cut into parts, each in its own
# ignored folder `.carry_part<N>/` (N = 1, 2, ...): call N carries `.carry_part<N>` (the first
# also `.whl`) and begins with `bash benchmarks/device_session.sh stash`, which moves the part to
# /tmp (kept while the machine is held: send each call within the 30 s warm window); the last
# call begins with `bash benchmarks/device_session.sh stash join .data_carry` and then runs.
# By default the part sizes are what is left of the 64 MiB after the tree (and the wheels, for
# the first part), less 1 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: bash benchmarks/device_parts.sh FILE..." >&2; exit 2; }
for f in "$@"; do [ -f "$f" ] || { echo "device_parts: no such file: $f" >&2; exit 2; }; done
mib=$((1024 * 1024))
tree=$(git ls-files -z | xargs -0 stat -c %s | awk '{s += $1} END {print s}')
wheels=$( (du -sb .whl 2> /dev/null || echo 0) | awk '{print $1}')
rest=$((64 * mib - tree - mib))
size=$(( ${PARTS_MB:-0} > 0 ? PARTS_MB * 1000000 : rest ))
first=$(( ${PARTS_FIRST_MB:-0} > 0 ? PARTS_FIRST_MB * 1000000 : rest - wheels ))
[ "$first" -gt 0 ] && [ "$size" -gt 0 ] || { echo "device_parts: the tree ($tree bytes) leaves no room for data" >&2; exit 2; }

grep -qx '/.carry_part\*/' .git/info/exclude 2> /dev/null || echo '/.carry_part*/' >> .git/info/exclude
rm -rf .carry_part*
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
members=()
for f in "$@"; do members+=(-C "$(cd "$(dirname "$f")" && pwd)" "$(basename "$f")"); done
tar cf "$tmp/data.tar" "${members[@]}"
total=$(stat -c %s "$tmp/data.tar")
offset=0 n=0
while [ "$offset" -lt "$total" ]; do
    n=$((n + 1))
    take=$size
    [ "$n" != 1 ] || take=$first
    mkdir -p ".carry_part$n"
    dd if="$tmp/data.tar" of=".carry_part$n/part-$(printf %03d "$n")" bs=1M iflag=skip_bytes,count_bytes skip="$offset" count="$take" status=none
    offset=$((offset + take))
done
echo "$total bytes in $n part(s) (first $first, then $size bytes; tree $tree, wheels $wheels):"
for i in $(seq 1 "$n"); do
    carry="[\".carry_part$i\"]"
    [ "$i" != 1 ] || carry="[\".carry_part$i\", \".whl\"]"
    if [ "$i" = "$n" ]; then
        echo "  call $i: carry $carry; command: bash benchmarks/device_session.sh stash join .data_carry && MOPO_KIT_DATA=\$PWD/.data_carry ..."
    else
        echo "  call $i: carry $carry; command: bash benchmarks/device_session.sh stash"
    fi
done
