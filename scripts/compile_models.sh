#!/usr/bin/env bash
# Compile catalog models with Google's edgetpu_compiler (same as `usbtrace models compile`).
#   scripts/compile_models.sh conv_300 dense_900     # or a family (conv), or --all
# Missing sources are built first. edgetpu_compiler comes only from Coral's own apt repository
# (Debian package `edgetpu-compiler`, x86-64 Linux); without it this prints how to get it, exit 2.
set -euo pipefail
cd "$(dirname "$0")/.."
exec env PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" python3 -m usbtrace models compile "$@"
