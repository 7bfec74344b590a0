#!/usr/bin/env bash
# README command 2 (and CI): install what is missing, then lint, type-check and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PY=${PYTHON:-python3}
echo "==> ruff"; "$PY" -m ruff check .
pkgs=(); for p in contracts models stream_app moodle_connector riskstream; do [ -f "$p/__init__.py" ] && pkgs+=("$p"); done
echo "==> mypy ${pkgs[*]}"; "$PY" -m mypy "${pkgs[@]}"
if [ -d moodle_plugin ]; then
  echo "==> php -l"
  find moodle_plugin tests/moodle_real -name '*.php' -print0 | xargs -0 -n1 php -l >/dev/null
fi
if command -v docker-compose >/dev/null 2>&1; then
  echo "==> docker-compose config"
  docker-compose -f docker/docker-compose.yml --env-file docker/.env.example config -q
fi
echo "==> pytest"
"$PY" -m pytest -q -p no:cacheprovider --durations=15 "$@"
