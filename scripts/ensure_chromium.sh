#!/bin/sh
# Headless Chromium and its WebDriver from Debian, for the browser test (nothing is downloaded at run time
# by the test itself). Installs only what is missing; needs root (or passwordless sudo) and apt.
set -eu
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo -n"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver
test -x /usr/bin/chromium && test -x /usr/bin/chromedriver
