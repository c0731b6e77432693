#!/usr/bin/env bash
# The main job on the built-in default: a generated tiny model and dataset.
set -euo pipefail
build=${1:-build}
"$build/vlmn" --version
