#!/usr/bin/env bash
# Installs the Debian packages the service and its tests use, when missing:
#   jupyter-nbconvert, python3-nbclient, python3-ipykernel  notebook executor
#   postgresql                                              read-model tests on PostgreSQL
#   chromium                                                the console and Temporal UI end-to-end tests
#   iproute2                                                the second-host test (network namespaces)
#   iptables                                                rank isolation: packet rules that keep ranks off the control plane
#   docker-compose                                          the deployment file's check
#   gcc, libc6-dev                                          the rank launcher (native/rank-launch.c), built by `npm run build`
# With --check it installs nothing: it prints the missing packages, one a line, and exits 0 (none
# missing), 1 (some missing) or 2 (not a Debian system: no dpkg to ask). `npm test` runs that first.
set -euo pipefail
packages=(jupyter-nbconvert python3-nbclient python3-ipykernel postgresql chromium iproute2 iptables docker-compose gcc libc6-dev)
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "[system-deps] no dpkg-query: this is not a Debian system; install the equivalents of: ${packages[*]}" >&2
  exit 2
fi
missing=()
# One dpkg-query for all of them (a few ms), not one dpkg per package.
installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null | awk '$2 == "installed" { print $1 }' || true)
for p in "${packages[@]}"; do
  grep -qx "$p" <<<"$installed" || missing+=("$p")
done
if [[ "${1:-}" == "--check" ]]; then
  [[ ${#missing[@]} -eq 0 ]] && exit 0
  printf '%s\n' "${missing[@]}"
  exit 1
fi
if [[ ${#missing[@]} -eq 0 ]]; then exit 0; fi
echo "[system-deps] installing: ${missing[*]}" >&2
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2 || echo "[system-deps] apt-get update failed; trying to install from the current lists" >&2
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
