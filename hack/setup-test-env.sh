#!/usr/bin/env bash
# Builds (once) and prints the locations of the real servers the tests and the
# playground run: kube-apiserver and etcd from source, MinIO from source, and
# Mosquitto from Debian's packages. Nothing prebuilt is downloaded.
#
# Binaries are cached outside the checkout, keyed by version, so a fresh clone
# reuses them. Output: shell assignments for KUBEBUILDER_ASSETS, MINIO_BIN and
# MOSQUITTO_BIN, suitable for eval.
set -euo pipefail

HACK_DIR=$(cd "$(dirname "$0")" && pwd)
CACHE=${OTAFLEET_CACHE:-$HOME/.cache/otafleet}
KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.7.0
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

log() { echo "setup-test-env: $*" >&2; }

# build_once DIR NAME CMD...: runs CMD unless DIR/NAME exists; builds into a
# temporary directory and renames, so an interrupted build never leaves a
# half-written binary in the cache.
build_once() {
  local dir=$1 name=$2; shift 2
  [[ -x "$dir/$name" ]] && return 0
  mkdir -p "$dir"
  local tmp; tmp=$(mktemp -d "$dir/.build.XXXXXX")
  log "building $name into $dir (first run only; takes minutes)"
  local start=$SECONDS
  "$@" "$tmp/$name"
  mv "$tmp/$name" "$dir/$name"
  rmdir "$tmp"
  log "built $name in $((SECONDS - start))s"
}

build_controlplane() {
  (cd "$HACK_DIR/controlplane" && go build -trimpath -ldflags=-s -o "$2" "./cmd/$1")
}
build_apiserver() { build_controlplane kube-apiserver "$1"; }
build_etcd() { build_controlplane etcd "$1"; }
build_minio() {
  local gobin; gobin=$(dirname "$1")
  GOBIN="$gobin" GOFLAGS=-trimpath go install "github.com/minio/minio@${MINIO_VERSION}"
}

ASSETS="$CACHE/k8s/kube-apiserver-${KUBE_VERSION}_etcd-${ETCD_VERSION}"
MINIO_DIR="$CACHE/minio/${MINIO_VERSION}"

# One build at a time: test packages run in parallel and may all ask at once.
mkdir -p "$CACHE"
exec 9>"$CACHE/.setup.lock"
flock 9

want=${1:-all}
if [[ $want == all || $want == k8s ]]; then
  build_once "$ASSETS" kube-apiserver build_apiserver
  build_once "$ASSETS" etcd build_etcd
  echo "export KUBEBUILDER_ASSETS=$ASSETS"
fi
if [[ $want == all || $want == minio ]]; then
  build_once "$MINIO_DIR" minio build_minio
  echo "export MINIO_BIN=$MINIO_DIR/minio"
fi
if [[ $want == all || $want == mosquitto ]]; then
  if ! command -v mosquitto >/dev/null && [[ ! -x /usr/sbin/mosquitto ]]; then
    log "installing mosquitto from Debian's packages"
    if [[ $(id -u) == 0 ]]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto >&2
  fi
  echo "export MOSQUITTO_BIN=$(command -v mosquitto || echo /usr/sbin/mosquitto)"
fi
