#!/usr/bin/env bash
# Check that requirements.txt (plus requirements-nodeps.txt, --no-deps) resolves to wheels on Python 3.10,
# 3.11, 3.12 and 3.13, and that the sdist-only python_speech_features compiles on each.
# Needs PyPI; installs nothing; under a minute (the versions run in parallel).
#   scripts/check_python_versions.sh [3.10 3.11 ...]
# A version whose interpreter is found (python3.X on PATH, or pyenv) is checked exactly with
# `pip --python`; otherwise `--python-version` is used, which ignores environment markers.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
versions=(${@:-3.10 3.11 3.12 3.13})
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grep -v -i '^python[_-]speech[_-]features' requirements.txt > "$tmp/wheels.txt"
pin=$(grep -i '^python[_-]speech[_-]features==' requirements.txt)
"$PYTHON" -m pip download --quiet --no-deps --no-binary=:all: -d "$tmp/sdist" "$pin" 2> /dev/null
mkdir "$tmp/psf" && tar -xzf "$tmp"/sdist/*.tar.gz -C "$tmp/psf"

interpreter() {  # a python of version $1, or nothing
  local p
  for p in ~/.pyenv/versions/"$1".*/bin/python "$(command -v "python$1" 2> /dev/null || true)"; do
    if [[ -x $p && $("$p" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2> /dev/null) == "$1" ]]; then
      echo "$p"
      return
    fi
  done
}

check() {  # one version; prints one line per check, returns non-zero on failure
  local v=$1 py how opts log="$tmp/log-$1"
  py=$(interpreter "$v")
  if [[ -n $py ]]; then
    opts=(--python "$py"); how=$py
  else
    opts=(); how="no interpreter: --python-version $v, markers unchecked"
  fi
  pip_dry() { "$PYTHON" -m pip "${opts[@]}" install --dry-run --ignore-installed --only-binary=:all: \
                $([[ -z $py ]] && echo "--python-version $v --target $tmp/target-$v") "$@"; }
  if pip_dry -r "$tmp/wheels.txt" > "$log" 2>&1 && pip_dry --no-deps -r requirements-nodeps.txt >> "$log" 2>&1; then
    echo "Python $v: resolves, $(grep -m1 -o 'torch-[0-9.]*' "$log" | head -1),"\
         "$(($(grep -m1 '^Would install' "$log" | wc -w) - 2)) packages + $(grep -c "^[a-z]" requirements-nodeps.txt) without dependencies [$how]"
  else
    echo "Python $v: FAILS to resolve [$how]:"
    grep -v '^WARNING: Location' "$log" | tail -15
    return 1
  fi
  if [[ -n $py ]]; then
    if "$py" -m compileall -q "$tmp"/psf/*/python_speech_features > "$tmp/compile-$v" 2>&1; then
      echo "Python $v: $pin compiles from its sdist"
    else
      echo "Python $v: $pin does NOT compile:"; cat "$tmp/compile-$v"
      return 1
    fi
  fi
}

for v in "${versions[@]}"; do
  check "$v" > "$tmp/out-$v" 2>&1 &
done
failed=0
for job in $(jobs -p); do
  wait "$job" || failed=1
done
cat "$tmp"/out-*
exit $failed
