#!/usr/bin/env bash
# Installs the cargo subcommands Herald's checks use, each pinned to one version (idempotent:
# installs only when the tool is missing or another version is installed). They live in
# ~/.cargo/bin (cargo's own install root), so later runs on the same machine reuse them.
# Prints nothing when everything is installed, one line per install otherwise.
set -euo pipefail

# cargo-machete finds dependencies a crate declares but never names (.ci/run, "unused
# dependencies"); a few seconds per run, and quick to build.
CARGO_MACHETE_VERSION=0.9.2

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
