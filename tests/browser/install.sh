#!/usr/bin/env bash
# Installs what tests/browser/check_page.py needs, and only what is missing:
# Debian's Chromium and a font for it (apt), and Playwright (pip), which drives
# that Chromium. Playwright's own browser download is never used.
# Idempotent; run as root (or with sudo) on Debian.
set -euo pipefail
cd "$(dirname "$0")"

have_browser() {
  [ -n "${CHROMIUM:-}" ] && return 0
  for b in chromium chromium-browser google-chrome google-chrome-stable; do
    command -v "$b" >/dev/null 2>&1 && return 0
  done
  return 1
}

missing=()
have_browser || missing+=(chromium)
dpkg-query -W -f='${Status}' fonts-dejavu-core 2>/dev/null | grep -q 'ok installed' \
  || missing+=(fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r requirements.txt
