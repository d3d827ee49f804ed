#!/usr/bin/env bash
# Run assignment3.ipynb top to bottom (saving its outputs in the notebook) and write assignment3.pdf.
# A3_FAST=1 ./export_pdf.sh runs the quick version into build/ and writes assignment3-fast.pdf,
# leaving the notebook as it is. Offline: FSDD_SOURCE=/path/to/archive.tar.gz ./export_pdf.sh
set -euo pipefail
cd "$(dirname "$0")"
source scripts/env.sh
# LaTeX route of nbconvert: pandoc, xelatex (+ fonts and packages), rsvg-convert for d2l's SVG plots
ensure_system_packages pandoc texlive-xetex texlive-fonts-recommended texlive-plain-generic \
  texlive-latex-extra lmodern fonts-dejavu-core librsvg2-bin
ensure_venv
.venv/bin/python -c "import helpers; helpers.download_fsdd()"

nbconvert=(.venv/bin/jupyter nbconvert --config scripts/nbconvert_config.py)
# nbconvert's --execute with progress on stderr (cells, section, training epoch, time left); it
# writes the executed notebook only when every cell succeeded, else names the failing cell.
execute() { .venv/bin/python scripts/execute_notebook.py "$@" || { echo "No PDF written." >&2; exit 1; }; }
if [ "${A3_FAST:-0}" = "1" ]; then
  mkdir -p build
  execute assignment3.ipynb build/assignment3-fast.ipynb
  "${nbconvert[@]}" --to pdf build/assignment3-fast.ipynb --output-dir . --output assignment3-fast
  echo "Wrote assignment3-fast.pdf (fast mode; the notebook was not changed)"
else
  execute assignment3.ipynb assignment3.ipynb
  "${nbconvert[@]}" --to pdf assignment3.ipynb --output assignment3
  echo "Wrote assignment3.pdf and saved the outputs into assignment3.ipynb"
fi
# The hand-in names its students: remind (without stopping) while the header holds its placeholders.
if grep -q -e "(student names here)" -e "(group name here)" assignment3.ipynb; then
  echo "Warning: the Names and Group fields of assignment3.ipynb still hold their placeholders;" \
       "fill them in (first cell) and export again before you hand in." >&2
fi
