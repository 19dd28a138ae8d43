#!/usr/bin/env bash
# Regenerates go.mod's replace block from k8s.io/kubernetes's own go.mod, so
# every staging module is pinned to the matching v0.x release.
set -euo pipefail
cd "$(dirname "$0")"
KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
STAGING_VERSION="v0.${KUBE_VERSION#v1.}"
ETCD_VERSION=${ETCD_VERSION:-v3.7.0}
mod=$(go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
{
  echo "// Module controlplane builds kube-apiserver and etcd from source for envtest."
  echo "// Regenerate the replace block with hack/controlplane/gen-gomod.sh when bumping."
  echo "module github.com/otafleet/otafleet/hack/controlplane"
  echo
  echo "go 1.26.0"
  echo
  echo "require ("
  echo "	k8s.io/kubernetes ${KUBE_VERSION}"
  echo "	go.etcd.io/etcd/server/v3 ${ETCD_VERSION}"
  echo ")"
  echo
  echo "replace ("
  sed -n '/^replace (/,/^)/p' "$mod" | awk -v v="$STAGING_VERSION" '/=> \.\/staging/ {print "\t" $1 " => " $1 " " v}'
  echo ")"
} > go.mod
go mod tidy
