#!/usr/bin/env bash
# mkvenv.sh DIR REQUIREMENTS: a Python venv in DIR with pip upgraded and REQUIREMENTS installed.
#
# Why not a bare `python3 -m venv`: when its ensurepip step fails, venv swallows ensurepip's
# output and prints only "returned non-zero exit status 1" (CI at fe1cd4f stopped there, on a
# machine whose disk was nearly full). Here the failure is shown with its cause and the free
# space, and the venv is then made without ensurepip: `--without-pip`, and pip installed into
# it from PyPI by the interpreter's own pip (`pip --python`, pip >= 22.3).
set -euo pipefail
dir=$1 req=$2
rm -rf "$dir"
if ! python3 -m venv "$dir" 2>"$dir.venv-err"; then
  echo "mkvenv: 'python3 -m venv $dir' failed:" >&2
  cat "$dir.venv-err" >&2 || true
  df -h "$(dirname "$dir")" "${TMPDIR:-/tmp}" >&2 || true
  if [ -x "$dir/bin/python" ]; then
    echo "mkvenv: ensurepip's own output:" >&2
    "$dir/bin/python" -m ensurepip --upgrade --default-pip >&2 || true
  fi
  echo "mkvenv: retrying without ensurepip (venv --without-pip, then pip from PyPI)" >&2
  rm -rf "$dir"
  python3 -m venv --without-pip "$dir"
  python3 -m pip --python "$dir/bin/python" install --quiet --upgrade pip
fi
rm -f "$dir.venv-err"
"$dir/bin/python" -m pip install --quiet --upgrade pip
"$dir/bin/python" -m pip install --quiet -r "$req"
