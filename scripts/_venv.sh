# Sourced by scripts/run and scripts/test: create .venv and install on first use
# (and again whenever pyproject.toml changes).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.installed-$(sha1sum "$ROOT/pyproject.toml" | cut -c1-12)"
if [ ! -f "$STAMP" ]; then
    echo "Setting up $VENV (first run or pyproject.toml changed)..." >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip >&2
    "$VENV/bin/pip" install --quiet -e "$ROOT[test]" >&2
    rm -f "$VENV"/.installed-*
    touch "$STAMP"
fi
cd "$ROOT"
