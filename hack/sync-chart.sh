#!/usr/bin/env bash
# Keeps charts/otafleet in step with the kustomize tree: the CRDs and the
# RBAC rules are copied, never edited by hand, so that `make verify` (which
# runs this and fails on a diff) catches a chart left behind by a change to
# the API or to a +kubebuilder:rbac marker.
set -euo pipefail
cd "$(dirname "$0")/.."
chart=charts/otafleet
rm -f "$chart"/crds/*.yaml
cp config/crd/bases/*.yaml "$chart/crds/"
cp config/rbac/role.yaml "$chart/files/manager-role.yaml"
cp config/rbac/leader_election_role.yaml "$chart/files/leader-election-role.yaml"
