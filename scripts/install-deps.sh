#!/usr/bin/env bash
# Install the Debian 12 packages vlmn needs to build, test and fuzz. Idempotent:
# installs only what is missing. As root (or through sudo when available) it runs
# apt-get; otherwise it prints the command to run as root. VLMN_DEPS_REFERENCE=1 also installs the Python reference stack
# (python3-torch, sentencepiece, PIL) used only to regenerate test fixtures.
set -eu
pkgs="build-essential cmake pkg-config clang libclang-rt-14-dev libomp-14-dev
libjpeg62-turbo-dev libpng-dev libsqlite3-dev sqlite3 libcjson-dev libicu-dev libcurl4-openssl-dev libmicrohttpd-dev
libopenmpi-dev openmpi-bin chromium chromium-driver jq curl"
if [ "${VLMN_DEPS_REFERENCE:-0}" = 1 ]; then
  pkgs="$pkgs python3 python3-numpy python3-torch python3-sentencepiece sentencepiece python3-pil python3-jinja2"
fi
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
  echo "install-deps: all packages present"
  exit 0
fi
as_root=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    as_root="sudo"
  else
    echo "install-deps: missing:$missing"
    echo "run as root: apt-get update && apt-get install -y --no-install-recommends$missing"
    exit 1
  fi
fi
echo "install-deps: installing$missing"
$as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
