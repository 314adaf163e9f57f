#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok) from their Go modules into a cache outside the checkout.
#
# Binaries land in  $ROLLGUARD_CACHE/controlplane/k8s-<ver>_etcd-<ver>_kwok-<ver>/
# and are built only when missing. Prints the directory on the last line of stdout.
#
# Settings (environment):
#   ROLLGUARD_CACHE   cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/rollguard)
#   K8S_VERSION       Kubernetes release (default below)
#   ETCD_VERSION      etcd server release
#   KWOK_VERSION      kwok release
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.7.3}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
CACHE=${ROLLGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rollguard}
OUT="$CACHE/controlplane/k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}"
K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

log() { printf '[controlplane] %s\n' "$*" >&2; }
die() { printf '[controlplane] error: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "Go is not installed; the local control plane is built from Go modules (install Go >= 1.26 and retry)."

missing=()
for b in etcd "${K8S_BINS[@]}" kwok kwok-stages.yaml; do
  [ -e "$OUT/$b" ] || missing+=("$b")
done
if [ ${#missing[@]} -eq 0 ]; then
  log "cached: $OUT"
  echo "$OUT"
  exit 0
fi

# Building with the local toolchain only: a dependency's `toolchain` line must not make go
# download another toolchain.
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
mkdir -p "$OUT"
work=$(mktemp -d "${TMPDIR:-/tmp}/rollguard-cp-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
step=0
total=${#missing[@]}
progress() { step=$((step + 1)); log "[$step/$total] $* ($(( $(date +%s) - start ))s elapsed)"; }

needs() { local b; for b in "${missing[@]}"; do [ "$b" = "$1" ] && return 0; done; return 1; }

gover=$(go env GOVERSION); gover=${gover#go}

# --- etcd: a tiny main around etcdmain ------------------------------------------------------
if needs etcd; then
  progress "building etcd $ETCD_VERSION (downloading modules on first run)"
  mkdir -p "$work/etcd"
  cat >"$work/etcd/main.go" <<'GO'
// Command etcd runs the etcd server from go.etcd.io/etcd/server/v3/etcdmain.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (
    cd "$work/etcd"
    go mod init rollguard.dev/controlplane/etcd >/dev/null 2>&1
    go mod edit -go="$gover"
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null
    go mod tidy >/dev/null
    go build -trimpath -ldflags "-s -w" -o "$OUT/etcd" .
  )
fi

# --- Kubernetes: a wrapper module that pins every staging module to v0.X.Y --------------------
k8s_needed=()
for b in "${K8S_BINS[@]}"; do needs "$b" && k8s_needed+=("$b"); done
if [ ${#k8s_needed[@]} -gt 0 ]; then
  progress "resolving k8s.io/kubernetes $K8S_VERSION"
  staging_ver="v0.${K8S_VERSION#v1.}"
  mkdir -p "$work/k8s"
  cd "$work/k8s"
  go mod init rollguard.dev/controlplane/k8s >/dev/null 2>&1
  go mod edit -go="$gover"
  modfile=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$modfile" ] || die "could not download k8s.io/kubernetes@$K8S_VERSION"
  # Every `k8s.io/x => ./staging/src/k8s.io/x` in Kubernetes' go.mod becomes `k8s.io/x => k8s.io/x v0.X.Y`.
  grep -o 'k8s.io/[a-z0-9-]* => ./staging' "$modfile" | awk '{print $1}' | while read -r m; do
    go mod edit -replace "$m=$m@$staging_ver"
  done
  go mod edit -require "k8s.io/kubernetes@$K8S_VERSION"
  {
    echo "package main"
    echo
    echo "import ("
    for b in "${k8s_needed[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$b\""; done
    echo ")"
  } >tools.go
  go mod tidy >/dev/null 2>&1 || true
  ver=${K8S_VERSION#v}
  major=${ver%%.*}; rest=${ver#*.}; minor=${rest%%.*}
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  for b in "${k8s_needed[@]}"; do
    progress "building $b $K8S_VERSION"
    go build -trimpath -ldflags "$ldflags" -o "$OUT/$b" "k8s.io/kubernetes/cmd/$b"
  done
  cd - >/dev/null
fi

# --- kwok --------------------------------------------------------------------------------------
if needs kwok; then
  progress "building kwok $KWOK_VERSION"
  GOBIN="$OUT" go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
fi

# --- kwok stages: the node and pod lifecycle kwok plays, as shipped in its module -----------
if needs kwok-stages.yaml; then
  progress "collecting kwok $KWOK_VERSION stages"
  dir=$(cd "$work" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -d "$dir" ] || die "could not download sigs.k8s.io/kwok@$KWOK_VERSION"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"
    cat "$dir/kustomize/stage/$f"
  done >"$OUT/kwok-stages.yaml.tmp"
  mv "$OUT/kwok-stages.yaml.tmp" "$OUT/kwok-stages.yaml"
fi

log "built ${missing[*]} in $(( $(date +%s) - start ))s into $OUT ($(du -sh "$OUT" | cut -f1))"
echo "$OUT"
