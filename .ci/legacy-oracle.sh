#!/usr/bin/env bash
# The oracle under the *other* TFLite interpreter: tflite-runtime 2.14 with numpy<2.
#
# dwgen prefers LiteRT (ai-edge-litert, numpy 2); projects still pinned to tflite-runtime
# get that instead (same API). This script builds a separate venv that has
# tflite-runtime and NOT ai-edge-litert (nor tflite-micro: those tests skip), installs
# dwgen into it, checks that dwgen picked tflite-runtime, and runs tests/test_oracle.py
# with a shorter sweep.
#
#   .ci/legacy-oracle.sh              # venv in ${TMPDIR:-/tmp}/dwgen-legacy-venv (reused)
#   PYTHON=python3.11 DWGEN_LEGACY_VENV=/path/venv DWGEN_ORACLE_CONFIGS=200 .ci/legacy-oracle.sh
#
# tflite-runtime 2.14.0 ships wheels for CPython 3.8-3.11 only.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
VENV=${DWGEN_LEGACY_VENV:-${TMPDIR:-/tmp}/dwgen-legacy-venv}
export DWGEN_ORACLE_CONFIGS=${DWGEN_ORACLE_CONFIGS:-40}
export DWGEN_TFLM_CONFIGS=${DWGEN_TFLM_CONFIGS:-0}

if ! "$PYTHON" -c 'import sys; sys.exit(not ((3, 8) <= sys.version_info[:2] <= (3, 11)))'; then
    echo "legacy-oracle: tflite-runtime 2.14.0 needs Python 3.8-3.11; $PYTHON is $("$PYTHON" -V 2>&1)." >&2
    echo "legacy-oracle: set PYTHON=python3.11 (or older)." >&2
    exit 2
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "legacy-oracle: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

# One resolver run, so numpy<2 holds for dwgen's own dependencies too. No extras:
# [test] would pull in ai-edge-litert, which is exactly what this run must not have.
"$PY" -m pip install --quiet "tflite-runtime==2.14.0" "numpy<2" "pytest>=7" -e "$ROOT"

if "$PY" -c 'import ai_edge_litert' 2>/dev/null; then
    echo "legacy-oracle: ai-edge-litert is installed in $VENV; this run must use tflite-runtime" >&2
    exit 1
fi
"$PY" - <<'PYEOF'
import numpy
from dwgen.oracle import interpreters

found = interpreters()
print(f"legacy-oracle: numpy {numpy.__version__}, interpreters {found}")
assert numpy.__version__.startswith("1."), numpy.__version__
assert (found["tflite"] or "").startswith("tflite-runtime 2.14"), found
PYEOF

cd "$ROOT"
exec "$PY" -m pytest tests/test_oracle.py -q -p no:cacheprovider "$@"
