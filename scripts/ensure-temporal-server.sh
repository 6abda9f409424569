#!/usr/bin/env bash
# Prints the directory of a Temporal server build on stdout, building it from its Go module when it
# is not cached. The directory holds:
#   temporal-server      go.temporal.io/server/cmd/server       (frontend, history, matching, worker)
#   temporal-sql-tool    go.temporal.io/server/cmd/tools/sql    (creates and upgrades the SQL schemas)
#   schema/postgresql/   the module's versioned PostgreSQL schemas the tool applies
#   VERSION              the module version built
# Order: $TEMPORAL_SERVER_DIR (a directory laid out as above), the project's cache, then a build into
# the cache. The version is the one the Temporal CLI v1.5.1 embeds (v1.29.1); TEMPORAL_SERVER_VERSION
# (space-separated tags, tried in order) overrides it. Progress and errors go to stderr. Never
# downloads a prebuilt binary: only the Go module proxy's sources.
set -euo pipefail

VERSIONS=(${TEMPORAL_SERVER_VERSION:-v1.29.1})
CACHE="${BATCHD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/batchd}"

say() { printf '[temporal-server] %s\n' "$*" >&2; }

complete() {
  [[ -x "$1/temporal-server" && -x "$1/temporal-sql-tool" && -d "$1/schema/postgresql/v12/temporal/versioned" && -d "$1/schema/postgresql/v12/visibility/versioned" ]]
}

if [[ -n "${TEMPORAL_SERVER_DIR:-}" ]]; then
  if complete "$TEMPORAL_SERVER_DIR"; then echo "$TEMPORAL_SERVER_DIR"; exit 0; fi
  say "TEMPORAL_SERVER_DIR=$TEMPORAL_SERVER_DIR lacks temporal-server, temporal-sql-tool or schema/postgresql/v12"; exit 1
fi
for v in "${VERSIONS[@]}"; do
  if complete "$CACHE/temporal-server-$v"; then echo "$CACHE/temporal-server-$v"; exit 0; fi
done

if ! command -v go >/dev/null 2>&1; then
  say "no Temporal server build found in $CACHE and no Go toolchain to build one."
  say "Install Go (https://go.dev/dl) or set TEMPORAL_SERVER_DIR to a directory laid out as this script's header says."
  exit 1
fi

# go install -v names each package as it is compiled: show a count and the elapsed time instead of
# the thousand names, so a long first build visibly moves.
progress() {
  local label=$1 start=$2 n=0 line
  while IFS= read -r line; do
    # Compiler and go-command errors ("# pkg", "file.go:1:2: ...", "go: ...") are shown whole.
    if [[ "$line" == "#"* || "$line" == "go: "* || "$line" == *.go:* ]]; then
      printf '%s\n' "$line" >&2
      continue
    fi
    n=$((n + 1))
    if (( n % 50 == 0 )); then say "$label: $n packages compiled ($(( $(date +%s) - start ))s)"; fi
  done
  say "$label: $n packages compiled ($(( $(date +%s) - start ))s)"
}

build() {
  local v=$1 dest=$2 pkg bin start
  mkdir -p "$dest.partial"
  for pkg in cmd/server cmd/tools/sql; do
    start=$(date +%s)
    say "building go.temporal.io/server/$pkg@$v (the first build takes several minutes)..."
    # go install puts the binary under GOBIN named after the package's last path element.
    if ! GOTOOLCHAIN=local GOBIN="$dest.partial" go install -v "go.temporal.io/server/$pkg@$v" 2> >(progress "$pkg" "$start"); then
      return 1
    fi
    wait
    bin=$(basename "$pkg")
    case "$pkg" in
      cmd/server) mv "$dest.partial/$bin" "$dest.partial/temporal-server" ;;
      cmd/tools/sql) mv "$dest.partial/$bin" "$dest.partial/temporal-sql-tool" ;;
    esac
    say "built $pkg@$v in $(( $(date +%s) - start ))s"
  done
  # The schemas ship inside the module; copy them beside the binaries so a cleaned module cache
  # does not take them away.
  local moddir
  moddir=$(GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download -json "go.temporal.io/server@$v" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  if [[ -z "$moddir" || ! -d "$moddir/schema/postgresql/v12" ]]; then
    say "module go.temporal.io/server@$v has no schema/postgresql/v12 (module dir: ${moddir:-unknown})"
    return 1
  fi
  mkdir -p "$dest.partial/schema"
  cp -r "$moddir/schema/postgresql" "$dest.partial/schema/"
  chmod -R u+w "$dest.partial/schema"
  echo "$v" >"$dest.partial/VERSION"
}

for v in "${VERSIONS[@]}"; do
  dest="$CACHE/temporal-server-$v"
  rm -rf "$dest.partial"
  start=$(date +%s)
  if build "$v" "$dest"; then
    rm -rf "$dest" && mv "$dest.partial" "$dest"
    say "Temporal server $v ready in $(( $(date +%s) - start ))s: $dest"
    echo "$dest"
    exit 0
  fi
  rm -rf "$dest.partial"
  say "building $v failed (the error is above); trying the next version"
done
say "could not build any of: ${VERSIONS[*]} (set TEMPORAL_SERVER_VERSION to try others)"
exit 1
