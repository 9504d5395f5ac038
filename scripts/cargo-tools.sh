#!/usr/bin/env bash
# Installs the cargo subcommands Herald's checks use, each pinned to one version (idempotent:
# installs only when the tool is missing or another version is installed). They live in
# ~/.cargo/bin (cargo's own install root), so later runs on the same machine reuse them.
# Prints nothing when everything is installed, one line per install otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

# cargo-machete finds dependencies a crate declares but never names (.ci/run, "unused
# dependencies"); a few seconds per run, and quick to build.
CARGO_MACHETE_VERSION=0.9.2
# sqlx-cli prepares and checks the committed `.sqlx/` query data (scripts/sqlx); its version
# is the one of sqlx in Cargo.lock, so it writes the data that sqlx's macros read.
SQLX_CLI_VERSION=0.8.6

# ensure_tool CRATE VERSION [cargo install options…]
ensure_tool() {
  local crate=$1 version=$2
  shift 2
  # read whole first: `grep -q` leaving early would fail the listing (SIGPIPE, pipefail)
  local installed
  installed="$(cargo install --list)"
  if ! grep -qx "$crate v$version:" <<<"$installed"; then
    echo "installing $crate $version into ~/.cargo/bin (cargo install)"
    # its own scratch target directory, not the workspace's CARGO_TARGET_DIR
    env -u CARGO_TARGET_DIR cargo install --quiet --locked "$crate" --version "$version" "$@"
  fi
}

ensure_tool cargo-machete "$CARGO_MACHETE_VERSION"
# a new sqlx in Cargo.lock needs the pin above moved with it
locked_sqlx="$(sed -n '/^name = "sqlx"$/{n;s/^version = "\(.*\)"$/\1/p;}' Cargo.lock)"
if [ "$locked_sqlx" != "$SQLX_CLI_VERSION" ]; then
  echo "scripts/cargo-tools.sh: SQLX_CLI_VERSION=$SQLX_CLI_VERSION but Cargo.lock has sqlx $locked_sqlx" >&2
  exit 1
fi
ensure_tool sqlx-cli "$SQLX_CLI_VERSION" --no-default-features --features postgres,rustls
