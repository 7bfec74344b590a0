#!/usr/bin/env bash
# Install everything riskstream needs on a fresh Debian machine (run as root).
# Idempotent: steps already done are skipped. Needs no network beyond apt and PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(redis-server php-cli docker-compose chromium wrk)  # chromium: /ui browser test; wrk: bench_api
# A real Moodle 5.0.2 for tests/moodle_real (../shared/moodle): PHP 8.2 with Moodle's extensions,
# PostgreSQL 15 (the suite runs a cluster of its own under var/moodle), zstd for the tarball.
DEB_PACKAGES+=(php8.2-cli php8.2-pgsql php8.2-curl php8.2-xml php8.2-mbstring php8.2-zip php8.2-gd
  php8.2-intl php8.2-soap php8.2-opcache php8.2-readline postgresql-15 zstd)
# node + npm run s3rver, the local S3 server behind the durable embedded broker.
command -v npm >/dev/null 2>&1 || DEB_PACKAGES+=(nodejs npm)
missing=()
for p in "${DEB_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
# torch first: the CPU build 2.13.0 is on disk; any other request pulls gigabytes of CUDA.
if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.13.0") else 1)' 2>/dev/null; then
  echo "==> pip install torch==2.13.0"
  "$PY" -m pip install -q torch==2.13.0
fi
echo "==> pip install -e .[dev]"
"$PY" -m pip install -q -e '.[dev]' 2>&1 | grep -vE "^WARNING: (Location|Running pip)" || true
# s3rver for RISKSTREAM_BROKER_DURABLE=true, project-local (var/node), pinned.
if [ ! -x var/node/node_modules/.bin/s3rver ] && ! command -v s3rver >/dev/null 2>&1; then
  echo "==> npm install s3rver@3.7.1 (var/node)"
  mkdir -p var/node
  npm install --silent --no-audit --no-fund --prefix var/node s3rver@3.7.1 >/dev/null
fi
"$PY" -c 'import riskstream, contracts' && echo "==> installed"
