#!/usr/bin/env bash
# Install everything mapsvc needs, idempotently: Debian packages (as root; otherwise print
# the exact apt command and stop), the .venv with the project, and the npm browser assets.
# Used by `make demo` and `make test`; quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

need_tests=${1:-}
pkgs=(postgresql-15 postgresql-15-postgis-3 postgresql-15-pgrouting)
[ "$need_tests" = "--test" ] && pkgs+=(chromium chromium-driver fonts-noto-cjk gdal-bin)
command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || pkgs+=(python3-venv)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    echo "setup: missing Debian packages. Run this as root, then run make again:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.mapsvc-installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing the project and its dependencies into .venv"
  # the build backend's notices (setuptools' "editable installation" warning) are noise
  # to the user: -q hides pip's own, PYTHONWARNINGS those of the build
  PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q --upgrade pip
  PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q -e '.[test]'
  touch "$stamp"
fi

vstamp=node_modules/.mapsvc-installed
if [ ! -f "$vstamp" ] || [ package-lock.json -nt "$vstamp" ] || [ static/vendor.json -nt "$vstamp" ] || [ ! -d static/vendor ]; then
  echo "setup: installing browser assets from npm"
  # errors only: no funding, audit or "added N packages" notices
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  .venv/bin/python scripts/vendor.py
  touch "$vstamp"
fi

# message catalogues (.po -> .mo) compiled here, where the tree is writable; the app only
# recompiles a catalogue that is missing or older than its .po
.venv/bin/python -c "from mapsvc.core.i18n import compile_catalogues; compile_catalogues()"
