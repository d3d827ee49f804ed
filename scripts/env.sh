# Shared set-up for export_pdf.sh and run_tests.sh (sourced, not run): one install path.
#   ensure_system_packages PKG...  install missing Debian packages (root) or explain how and exit
#   ensure_venv                    create .venv and install the pinned requirements when they changed
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
PYTHON=${PYTHON:-python3}

ensure_system_packages() {
  local missing=() pkg
  command -v dpkg-query >/dev/null || { echo "note: not a Debian/Ubuntu system; make sure these are installed: $*" >&2; return 0; }
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "Missing system packages: ${missing[*]}" >&2
    echo "Install them first, then run this again:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "Installing system packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

ensure_venv() {
  local want
  want=$(cat "$ROOT/requirements.txt" "$ROOT/requirements-nodeps.txt" | sha256sum | cut -d' ' -f1)
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  "$PYTHON" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 13)))' || {
    echo "Python 3.10-3.13 is needed; $PYTHON is $("$PYTHON" --version 2>&1). Set PYTHON=python3.X." >&2; exit 1; }
  "$PYTHON" -m venv "$VENV" 2>/dev/null || {
    ensure_system_packages "python3-venv"; "$PYTHON" -m venv "$VENV"; }
  echo "Installing the pinned requirements into $VENV (torch is large: a few minutes the first time)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r "$ROOT/requirements.txt"
  "$VENV/bin/python" -m pip install -q --no-deps -r "$ROOT/requirements-nodeps.txt"
  echo "$want" > "$VENV/.requirements.sha256"
}
