#!/usr/bin/env bash
# Prints the path of a Temporal CLI on stdout, building it from its Go module when none is found.
# Order: $TEMPORAL_CLI_PATH, the project's cache, a `temporal` on PATH, then a build into the cache.
# Progress and errors go to stderr. Never downloads a prebuilt binary.
set -euo pipefail

VERSIONS=(${TEMPORAL_CLI_VERSION:-v1.5.1 v1.5.0 v1.4.1 v1.3.0})
CACHE="${BATCHD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/batchd}"

say() { printf '[temporal-cli] %s\n' "$*" >&2; }

if [[ -n "${TEMPORAL_CLI_PATH:-}" ]]; then
  if [[ -x "$TEMPORAL_CLI_PATH" ]]; then echo "$TEMPORAL_CLI_PATH"; exit 0; fi
  say "TEMPORAL_CLI_PATH=$TEMPORAL_CLI_PATH is not an executable file"; exit 1
fi
for v in "${VERSIONS[@]}"; do
  if [[ -x "$CACHE/temporal-$v/temporal" ]]; then echo "$CACHE/temporal-$v/temporal"; exit 0; fi
done
if command -v temporal >/dev/null 2>&1; then command -v temporal; exit 0; fi

if ! command -v go >/dev/null 2>&1; then
  say "no Temporal CLI found and no Go toolchain to build one."
  say "Install Go (https://go.dev/dl) or set TEMPORAL_CLI_PATH to a temporal binary."
  exit 1
fi
for v in "${VERSIONS[@]}"; do
  dest="$CACHE/temporal-$v"
  say "building github.com/temporalio/cli/cmd/temporal@$v into $dest (a one-time build: several minutes)..."
  mkdir -p "$dest.partial"
  start=$(date +%s)
  if GOTOOLCHAIN=local GOBIN="$dest.partial" go install "github.com/temporalio/cli/cmd/temporal@$v" >&2; then
    rm -rf "$dest" && mv "$dest.partial" "$dest"
    say "built temporal $v in $(( $(date +%s) - start ))s: $dest/temporal"
    echo "$dest/temporal"
    exit 0
  fi
  rm -rf "$dest.partial"
  say "building $v failed; trying the next tag"
done
say "could not build any of: ${VERSIONS[*]}"
exit 1
