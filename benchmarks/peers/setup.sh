#!/usr/bin/env bash
# Creates one virtual environment per peer library under .cache/peers/<name>/venv, with pinned
# versions from PyPI. Nothing of streamq goes into them, and nothing of them into streamq's venv.
# Usage: bash benchmarks/peers/setup.sh [name ...]   (default: every peer)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="$ROOT/.cache/peers"
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "the adapters need Python 3.11+ (asyncio.timeout); set PYTHON=..." >&2; exit 2; }

UVLOOP="uvloop==0.23.0"
HIREDIS="hiredis==3.5.0"

# name -> packages (pinned)
declare -A PACKAGES=(
  [arq]="arq==0.28.0 $UVLOOP $HIREDIS"
  [saq]="saq[redis,hiredis]==0.26.4 typing_extensions==4.16.0 $UVLOOP"  # saq imports typing_extensions without declaring it
  [streaq]="streaq==7.2.0 $UVLOOP"
  [taskiq]="taskiq==0.13.0 taskiq-redis==1.2.4 $UVLOOP $HIREDIS"
  [bullmq]="bullmq==3.4.4 $UVLOOP $HIREDIS"
)
ORDER=(arq saq streaq taskiq bullmq)

names=("$@")
[ ${#names[@]} -eq 0 ] && names=("${ORDER[@]}")

failed=()
for name in "${names[@]}"; do
  pkgs="${PACKAGES[$name]:-}"
  if [ -z "$pkgs" ]; then
    echo "unknown peer: $name" >&2
    exit 2
  fi
  venv="$CACHE/$name/venv"
  echo "== $name: $pkgs"
  if [ ! -x "$venv/bin/python" ]; then
    "$PYTHON" -m venv "$venv"
  fi
  # shellcheck disable=SC2086
  # (grep drops pip's noise about find-links folders missing on this machine)
  if "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $pkgs \
      2> >(grep -v "^WARNING: Location" >&2); then
    "$venv/bin/python" -m pip freeze --disable-pip-version-check > "$CACHE/$name/freeze.txt"
  else
    echo "!! $name: install failed" >&2
    failed+=("$name")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
echo "peer venvs ready under $CACHE"
