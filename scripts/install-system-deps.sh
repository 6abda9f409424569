#!/usr/bin/env bash
# Installs the Debian packages the service and its tests use, when missing:
#   jupyter-nbconvert, python3-nbclient, python3-ipykernel  notebook executor
#   postgresql                                              read-model tests on PostgreSQL
#   chromium                                                Temporal UI end-to-end test
#   iproute2                                                the second-host test (network namespaces)
#   iptables                                                rank isolation: packet rules that keep ranks off the control plane
set -euo pipefail
packages=(jupyter-nbconvert python3-nbclient python3-ipykernel postgresql chromium iproute2 iptables docker-compose)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then exit 0; fi
echo "[system-deps] installing: ${missing[*]}" >&2
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2 || echo "[system-deps] apt-get update failed; trying to install from the current lists" >&2
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
