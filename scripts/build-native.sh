#!/usr/bin/env bash
# Builds the rank launcher (native/rank-launch.c) into dist/native/batchd-rank-launch, which starts an
# isolated rank in one exec instead of eight (docs/security.md). `npm run build` runs this.
# Without a C compiler it builds nothing and says so: the agent then starts isolated ranks through the
# shell launcher, which isolates them the same way but costs about 40 ms more per rank, and says that
# at start. scripts/install-system-deps.sh installs gcc.
set -euo pipefail
cd "$(dirname "$0")/.."
src=native/rank-launch.c
out=dist/native/batchd-rank-launch
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "[build-native] no C compiler ($cc): $out not built; isolated ranks will start through the shell launcher (about 40 ms slower each)" >&2
  exit 0
fi
if [[ -x "$out" && "$out" -nt "$src" && "$out" -nt "$0" ]]; then exit 0; fi
mkdir -p "$(dirname "$out")"
# Static: no dynamic loader runs while it is root (docs/security.md).
if ! "$cc" -std=c11 -O2 -Wall -Wextra -Werror -D_FORTIFY_SOURCE=2 -fstack-protector-strong -static -o "$out.tmp" "$src"; then
  rm -f "$out.tmp" "$out"
  echo "[build-native] $src did not compile (above): $out not built; isolated ranks will start through the shell launcher (about 40 ms slower each)" >&2
  exit 0
fi
mv "$out.tmp" "$out"
