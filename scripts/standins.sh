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
# pinned by scripts/prism/package-lock.json; reinstalled only when the lockfile changes.
ensure_prism() {
  if [ ! -x .standins/prism/node_modules/.bin/prism ] ||
    ! cmp -s scripts/prism/package-lock.json .standins/prism/package-lock.json; then
    echo "installing Prism into .standins/prism (npm ci)"
    mkdir -p .standins/prism
    cp scripts/prism/package.json scripts/prism/package-lock.json .standins/prism/
    SCARF_ANALYTICS=false npm ci --prefix .standins/prism --no-audit --no-fund >/dev/null
  fi
}

# The API contract tools (see api/tests/e2e/contract.rs): schemathesis, which fuzzes the
# served OpenAPI document against the running API, pinned here; reinstalled only when the pin
# changes.
SCHEMATHESIS_VERSION=4.32.5
ensure_schemathesis() {
  if [ ! -x .standins/contract/bin/schemathesis ] ||
    [ "$(.standins/contract/bin/schemathesis --version 2>/dev/null)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION into .standins/contract"
    python3 -m venv .standins/contract
    .standins/contract/bin/pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
  fi
}

# Redocly CLI, the OpenAPI linter, pinned by scripts/redocly/package-lock.json; reinstalled
# only when the lockfile changes.
ensure_redocly() {
  if [ ! -x .standins/redocly/node_modules/.bin/redocly ] ||
    ! cmp -s scripts/redocly/package-lock.json .standins/redocly/package-lock.json; then
    echo "installing Redocly CLI into .standins/redocly (npm ci)"
    mkdir -p .standins/redocly
    cp scripts/redocly/package.json scripts/redocly/package-lock.json .standins/redocly/
    npm ci --prefix .standins/redocly --no-audit --no-fund >/dev/null
  fi
}

ensure_services
ensure_smtp_standin
ensure_prism
ensure_schemathesis
ensure_redocly
