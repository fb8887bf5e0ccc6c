#!/bin/sh
# Installs Debian's Chromium and its WebDriver for tests/test_study_browser.py where missing.
# Idempotent: does nothing when both are there. Needs root (CI containers run as root).
set -eu
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install_chromium.sh: root is needed to apt-get install chromium chromium-driver" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver
