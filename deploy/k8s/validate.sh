#!/usr/bin/env bash
# Builds each overlay with kustomize (installed into .local/bin if missing: a Go module) and
# validates every built resource of a core kind against the Kubernetes schemas, offline
# (kubernetes-validate, from the test extras). The operators' kinds (Strimzi, CloudNativePG,
# KEDA) have no schemas there: tests/unit/test_k8s.py checks the fields we rely on.
#   deploy/k8s/validate.sh                 both overlays; the built manifests go to .local/k8s/
#   deploy/k8s/validate.sh --install-only  only get kustomize (CI does it while other things install)
set -euo pipefail
cd "$(dirname "$0")/../.."
KUSTOMIZE_VERSION=v5.7.1
BIN="$PWD/.local/bin"
PYTHON=.venv/bin/python
[[ -x $PYTHON ]] || PYTHON=python3

if [[ ! -x $BIN/kustomize ]]; then
  echo "k8s: installing kustomize $KUSTOMIZE_VERSION into .local/bin (go install)"
  mkdir -p "$BIN"
  GOBIN="$BIN" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
fi
echo "k8s: $("$BIN/kustomize" version)"
[[ ${1:-} == --install-only ]] && exit 0

"$PYTHON" deploy/k8s/generate.py --check
mkdir -p .local/k8s
for overlay in dev prod; do
  "$BIN/kustomize" build "deploy/k8s/overlays/$overlay" >".local/k8s/$overlay.yaml"
  "$PYTHON" deploy/k8s/schemas.py ".local/k8s/$overlay.yaml"
done
