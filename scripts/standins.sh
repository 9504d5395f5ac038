#!/usr/bin/env bash
# Installs the local stand-ins Herald's tests and quickstart use (idempotent), and starts
# PostgreSQL and Redis when they are not running. Prints nothing on success but one line
# per step.
set -euo pipefail
cd "$(dirname "$0")/.."

ensure_services() {
  if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    for _ in $(seq 100); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.1; done
  fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no
    for _ in $(seq 100); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
}

ensure_smtp_standin() {
  if [ ! -x .standins/smtp/bin/python ] || ! .standins/smtp/bin/python -c "import aiosmtpd" 2>/dev/null; then
    echo "installing aiosmtpd into .standins/smtp"
    python3 -m venv .standins/smtp
    .standins/smtp/bin/pip install --quiet --disable-pip-version-check aiosmtpd==1.4.6
  fi
}

# Prism (the contract stand-in for providers' HTTP APIs, see ../shared/notes/provider-standins.md),
# pinned; skipped when that version is already installed.
PRISM_VERSION=5.16.0
ensure_prism() {
  local installed
  installed=$(node -p "require('./.standins/prism/node_modules/@stoplight/prism-cli/package.json').version" 2>/dev/null || true)
  if [ "$installed" != "$PRISM_VERSION" ]; then
    echo "installing Prism $PRISM_VERSION into .standins/prism"
    SCARF_ANALYTICS=false npm install --prefix .standins/prism "@stoplight/prism-cli@$PRISM_VERSION" --no-audit --no-fund >/dev/null
  fi
}

ensure_services
ensure_smtp_standin
ensure_prism
