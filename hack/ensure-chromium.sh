#!/usr/bin/env bash
# Installs (once) headless Chromium from Debian's packages for the
# dashboard's browser tests, as setup-test-env.sh installs Mosquitto, and
# prints its location as a shell assignment for eval: CHROMIUM_BIN.
# Nothing is downloaded from outside the package registry.
set -euo pipefail

log() { echo "ensure-chromium: $*" >&2; }

find_chromium() {
  command -v chromium || command -v chromium-browser || { [[ -x /usr/bin/chromium ]] && echo /usr/bin/chromium; } || true
}

bin=$(find_chromium)
if [[ -z $bin ]]; then
  # Parallel `make` jobs may both get here: apt takes its own lock and
  # waits, and the second install finds the package installed.
  log "installing chromium from Debian's packages (first run only)"
  if [[ $(id -u) == 0 ]]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=600 chromium >&2
  bin=$(find_chromium)
fi
[[ -n $bin ]] || { log "chromium is still missing after the install"; exit 1; }
echo "export CHROMIUM_BIN=$bin"
