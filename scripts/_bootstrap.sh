# Sourced by ./scripts/run and ./scripts/test: make .venv from the pinned requirements when
# they changed since the last install, then put it first on PATH. Needs only Python 3.11+.
# Usage: bootstrap_venv requirements/<file>.txt
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

find_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  echo "error: Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

# requirements/test.txt includes dev.txt, so an install of test.txt also satisfies dev.txt.
bootstrap_venv() {
  local req="$ROOT/$1" name; name="$(basename "$1" .txt)"
  if [ ! -x "$VENV/bin/python" ]; then
    local py; py="$(find_python)"
    echo "==> creating $VENV with $py"
    "$py" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  fi
  local digest; digest="$(cat "$ROOT"/requirements/*.txt | sha256sum | cut -d' ' -f1)"
  local satisfied=""
  for stamp in "$VENV/.installed-$name" "$VENV/.installed-test"; do
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then satisfied=1; fi
  done
  if [ -z "$satisfied" ]; then
    echo "==> installing $1 into .venv"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    echo "$digest" > "$VENV/.installed-$name"
  fi
  export PATH="$VENV/bin:$PATH"
  export VIRTUAL_ENV="$VENV"
  cd "$ROOT"
}
