#!/usr/bin/env bash
# Packs a stripped static release haps-pipe and the shared libraries it loads (OpenBLAS, its
# Fortran runtime, LZ4) into a tarball (19 MB; 48 MB with haps-pipe-serve) for a GPU machine without Swift:
#   bench/gpu/pack.sh OUT.tgz    (after: swift build -c release --static-swift-stdlib --product haps-pipe,
#                                 and --product haps-pipe-serve for `haps-pipe serve`)
set -euo pipefail
out=${1:?usage: bench/gpu/pack.sh OUT.tgz}
stage=$(mktemp -d)
mkdir -p "$stage/bin" "$stage/lib"
dir=$(swift build -c release --static-swift-stdlib --show-bin-path)
cp "$dir/haps-pipe" "$stage/bin/haps-pipe"
strip "$stage/bin/haps-pipe"
# `haps-pipe serve` runs haps-pipe-serve beside it: packed when built (--product haps-pipe-serve).
if [ -x "$dir/haps-pipe-serve" ]; then cp "$dir/haps-pipe-serve" "$stage/bin/" && strip "$stage/bin/haps-pipe-serve"; fi
for lib in libopenblas.so.0 libgfortran.so.5 libquadmath.so.0 liblz4.so.1; do
  path=$(ldconfig -p | awk -v l="$lib" '$1 == l { print $NF; exit }')
  [ -n "$path" ] || { echo "pack.sh: $lib not found (install libopenblas-dev liblz4-dev)" >&2; exit 1; }
  cp -L "$path" "$stage/lib/$lib"
done
tar czf "$out" -C "$stage" bin lib
rm -rf "$stage"
ls -l "$out"
