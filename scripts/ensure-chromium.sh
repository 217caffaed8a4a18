#!/usr/bin/env bash
# Browser tests drive Debian's chromium through Playwright; `playwright install` cannot download browsers here.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "ok: $(/usr/bin/chromium --version 2>/dev/null || echo chromium present)"
  exit 0
fi
echo "Installing Debian chromium for the browser tests"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium >/dev/null
/usr/bin/chromium --version
