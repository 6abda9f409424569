#!/usr/bin/env bash
# The first step of `npm test`, before the build: a fresh clone has no node_modules, so install
# exactly the lockfile's (npm ci). An existing node_modules — a folder, or a link to a shared install —
# is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -e node_modules || -L node_modules ]]; then exit 0; fi
echo "[npm test] no node_modules yet: npm ci" >&2
exec npm ci --no-audit --no-fund
