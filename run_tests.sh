#!/usr/bin/env bash
# Set up .venv (the same way export_pdf.sh does) and run the whole test suite.
# Extra arguments go to pytest, e.g. ./run_tests.sh -k download
set -euo pipefail
cd "$(dirname "$0")"
source scripts/env.sh
ensure_venv
exec .venv/bin/python -m pytest "$@"
