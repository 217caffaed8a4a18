#!/usr/bin/env bash
# The local deployment target splits traffic with Debian's HAProxy (runtime API + Prometheus exporter). Paved
# starts its own haproxy processes, one per endpoint; the system service is never started.
set -euo pipefail
if command -v haproxy >/dev/null 2>&1; then
  echo "ok: $(haproxy -v | head -1)"
  exit 0
fi
echo "Installing Debian haproxy for the local deployment target"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq haproxy >/dev/null
$SUDO systemctl disable --now haproxy >/dev/null 2>&1 || true
haproxy -v | head -1
