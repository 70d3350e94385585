#!/usr/bin/env bash
# CI check: do the declared dependency floors work?
# Creates a fresh virtual environment, installs the LOWEST versions pyproject.toml allows for
# the analysis stack (numpy, scipy, pandas, statsmodels, patsy; pins printed by
# lowest_reqs.py), plus pytest, and runs tests/analysis against src/ (ablab itself is not
# installed, so nothing pulls newer versions in).
#
# Needs: a Python 3.11 interpreter ($PYTHON, default python3.11 or python3) and access to the
# package index (about 120 MB of wheels on first run). Usage, from the repository root:
#   bash tests/packaging/lowest.sh            # fresh venv in a temporary folder
#   LOWEST_VENV=.venv-lowest bash tests/packaging/lowest.sh   # reuse a venv between runs
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=${LOWEST_VENV:-$(mktemp -d)/venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
REQS=$("$PY" tests/packaging/lowest_reqs.py)
echo "lowest allowed versions:"; echo "$REQS" | sed 's/^/  /'
# --only-binary: the floors must install from wheels on the supported Python, as users get them
echo "$REQS" | "$VENV/bin/python" -m pip install -q --only-binary=:all: -r /dev/stdin \
  pytest pytest-timeout hypothesis
"$VENV/bin/python" -m pip list 2>/dev/null | grep -iE '^(numpy|scipy|pandas|statsmodels|patsy) '
PYTHONPATH="$PWD/src" "$VENV/bin/python" -m pytest tests/analysis -q -x -p no:cacheprovider "$@"
