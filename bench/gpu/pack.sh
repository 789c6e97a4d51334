#!/usr/bin/env bash
# Packs a stripped static release haps-pipe, haps-pipe-serve (which `haps-pipe serve` runs from
# beside it) and the shared libraries they load (OpenBLAS, its Fortran runtime, LZ4) into a
# tarball (about 19 MB without the server) for a GPU machine without Swift:
#   bench/gpu/pack.sh OUT.tgz
# after: swift build -c release --static-swift-stdlib --product haps-pipe
#        swift build -c release --static-swift-stdlib --product haps-pipe-serve
set -euo pipefail
out=${1:?usage: bench/gpu/pack.sh OUT.tgz}
stage=$(mktemp -d)
mkdir -p "$stage/bin" "$stage/lib"
bins=$(swift build -c release --static-swift-stdlib --show-bin-path)
for b in haps-pipe haps-pipe-serve; do
  [ -x "$bins/$b" ] || { echo "pack.sh: no $bins/$b (swift build -c release --static-swift-stdlib --product $b)" >&2; exit 1; }
  cp "$bins/$b" "$stage/bin/$b"
  strip "$stage/bin/$b"
done
for lib in libopenblas.so.0 libgfortran.so.5 libquadmath.so.0 liblz4.so.1; do
  path=$(ldconfig -p | awk -v l="$lib" '$1 == l { print $NF; exit }')
  [ -n "$path" ] || { echo "pack.sh: $lib not found (install libopenblas-dev liblz4-dev)" >&2; exit 1; }
  cp -L "$path" "$stage/lib/$lib"
done
tar czf "$out" -C "$stage" bin lib
rm -rf "$stage"
ls -l "$out"
