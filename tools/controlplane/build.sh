#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok), the Argo Rollouts controller and the helm CLI from their Go
# modules into a cache outside the checkout.
#
# Binaries land in  $ROLLGUARD_CACHE/controlplane/k8s-<ver>_etcd-<ver>_kwok-<ver>/
# and Argo Rollouts (rollouts-controller and its CRDs in crds/) in
#                   $ROLLGUARD_CACHE/controlplane/argo-rollouts-<ver>/
# and helm in       $ROLLGUARD_CACHE/controlplane/helm-<ver>/
# and are built only when missing. Prints the control-plane directory on the last line of stdout.
#
#   build.sh              build what is missing (waits for a build already running)
#   build.sh --check      exit 0 when everything is cached, 1 when not; builds nothing
#   build.sh --dir        print the cache directory of this version set (a build holds DIR.lock)
#   build.sh --argo-dir   print the cache directory of Argo Rollouts (built or not)
#   build.sh --helm-dir   print the cache directory of helm (built or not)
#   build.sh --announce   say what would be built, why and about how long it takes; builds nothing
#
# Settings (environment):
#   ROLLGUARD_CACHE   cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/rollguard)
#   K8S_VERSION       Kubernetes release (default below)
#   ETCD_VERSION      etcd server release
#   KWOK_VERSION      kwok release
#   ARGO_ROLLOUTS_VERSION  Argo Rollouts release (github.com/argoproj/argo-rollouts)
#   HELM_VERSION      Helm release (helm.sh/helm/v4)
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.7.3}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
ARGO_ROLLOUTS_VERSION=${ARGO_ROLLOUTS_VERSION:-v1.10.0}
HELM_VERSION=${HELM_VERSION:-v4.3.2}
CACHE=${ROLLGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rollguard}
OUT="$CACHE/controlplane/k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}"
# A directory of its own: Argo Rollouts' version moves independently of the control plane's.
ARGO_OUT="$CACHE/controlplane/argo-rollouts-${ARGO_ROLLOUTS_VERSION}"
HELM_OUT="$CACHE/controlplane/helm-${HELM_VERSION}"
K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

log() { printf '[controlplane] %s\n' "$*" >&2; }
die() { printf '[controlplane] error: %s\n' "$*" >&2; exit 1; }

# What each build costs: about its wall time in seconds on an idle 2-core machine of the kind
# the project is built on, cold (empty Go caches), times its 2 cores; an estimate divides by the
# cores here. Measured one at a time before DWARF was dropped (etcd 86 s, Kubernetes 781 s, kwok
# 137 s), scaled to the 675 s the three took side by side without it. Argo Rollouts was measured
# with DWARF dropped: 185 s on its own with an empty GOCACHE, module downloads included (169 s
# with the modules already downloaded). helm was measured the same way: 167 s on its own with
# empty GOCACHE and GOMODCACHE, module downloads included.
declare -A COST=([etcd]=115 [k8s]=1050 [kwok]=185 [argo]=370 [helm]=335)

find_missing() {
  missing=()
  local b
  for b in etcd "${K8S_BINS[@]}" kwok kwok-stages.yaml; do
    [ -e "$OUT/$b" ] || missing+=("$b")
  done
  [ -e "$ARGO_OUT/rollouts-controller" ] || missing+=(rollouts-controller)
  [ -d "$ARGO_OUT/crds" ] || missing+=(rollouts-crds)
  [ -e "$HELM_OUT/helm" ] || missing+=(helm)
}
needs() { local b; for b in "${missing[@]}"; do [ "$b" = "$1" ] && return 0; done; return 1; }
needs_argo() { needs rollouts-controller || needs rollouts-crds; }
cores=$(nproc 2>/dev/null || echo 2)
minutes() { echo $(( ($1 / cores + 59) / 60 )); }

find_missing
case "${1:-}" in
  --check) [ ${#missing[@]} -eq 0 ]; exit ;;
  --dir) echo "$OUT"; exit 0 ;;
  --argo-dir) echo "$ARGO_OUT"; exit 0 ;;
  --helm-dir) echo "$HELM_OUT"; exit 0 ;;
  --announce)
    [ ${#missing[@]} -eq 0 ] && exit 0
    cost=0
    needs etcd && cost=$((cost + COST[etcd]))
    for b in "${K8S_BINS[@]}"; do needs "$b" && { cost=$((cost + COST[k8s])); break; }; done
    needs kwok && cost=$((cost + COST[kwok]))
    needs_argo && cost=$((cost + COST[argo]))
    needs helm && cost=$((cost + COST[helm]))
    log "building the local Kubernetes control plane: ${missing[*]}"
    log "  why: the demo and the tests run a real API server, controller manager, scheduler,"
    log "       kwok's fake nodes and the Argo Rollouts controller, and install the Helm chart"
    log "       with helm, all built from their Go modules (Kubernetes $K8S_VERSION, etcd $ETCD_VERSION,"
    log "       kwok $KWOK_VERSION, Argo Rollouts $ARGO_ROLLOUTS_VERSION, Helm $HELM_VERSION)"
    log "  where: $OUT, $ARGO_OUT and $HELM_OUT,"
    log "         once per machine: every checkout and every later run reuses them"
    log "  how long: about $(minutes "$cost") minutes on this machine ($cores cores, nothing else running)"
    exit 0 ;;
  "") ;;
  *) die "unknown option $1 (see the header of $0)" ;;
esac
if [ ${#missing[@]} -eq 0 ]; then
  log "cached: $OUT, $ARGO_OUT, $HELM_OUT"
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null 2>&1 || die "Go is not installed; the local control plane is built from Go modules (install Go >= 1.26 and retry)."

# One build at a time per cache: a second one waits for the first and then finds its work done.
mkdir -p "$OUT"
exec 9>"$OUT.lock"
if ! flock -n 9; then
  log "another build of $OUT is running; waiting for it"
  flock 9
fi
find_missing
if [ ${#missing[@]} -eq 0 ]; then
  log "cached: $OUT, $ARGO_OUT, $HELM_OUT"
  echo "$OUT"
  exit 0
fi

# Building with the local toolchain only: a dependency's `toolchain` line must not make go
# download another toolchain.
# -dwarf=false: the binaries are stripped (-s -w), so the compiler need not write debug
# information in the first place; stack traces do not use it.
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
work=$(mktemp -d "${TMPDIR:-/tmp}/rollguard-cp-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
gover=$(go env GOVERSION); gover=${gover#go}

# The three builds are separate Go modules; they run side by side, so that one's downloads
# and links overlap another's compiling. Each logs when it starts and ends; a failure prints
# the end of its own log.
build_etcd() {
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
  cd "$work/etcd"
  go mod init rollguard.dev/controlplane/etcd >/dev/null 2>&1
  go mod edit -go="$gover"
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null
  go mod tidy >/dev/null
  go build -trimpath -gcflags=all=-dwarf=false -ldflags "-s -w" -o "$OUT/etcd" .
}

# Kubernetes: a wrapper module that pins every staging module to v0.X.Y.
build_k8s() {
  local staging_ver="v0.${K8S_VERSION#v1.}" modfile b
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
  local ver=${K8S_VERSION#v} major rest minor ldflags="-s -w" pkg
  major=${ver%%.*}; rest=${ver#*.}; minor=${rest%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  # One invocation for all of them: the packages they share are compiled once and the
  # binaries linked side by side.
  local pkgs=()
  for b in "${k8s_needed[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  go build -trimpath -gcflags=all=-dwarf=false -ldflags "$ldflags" -o "$work/bin/" "${pkgs[@]}"
  for b in "${k8s_needed[@]}"; do mv "$work/bin/$b" "$OUT/$b"; done
}

# Argo Rollouts: its go.mod pins the k8s.io/* modules with `replace` directives, which
# `go install module@version` refuses; a wrapper module copies them and builds the command.
build_argo() {
  local json modfile dir line from to
  mkdir -p "$work/argo"
  cd "$work/argo"
  go mod init rollguard.dev/controlplane/argo-rollouts >/dev/null 2>&1
  go mod edit -go="$gover"
  json=$(go mod download -json "github.com/argoproj/argo-rollouts@$ARGO_ROLLOUTS_VERSION")
  modfile=$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' <<<"$json")
  dir=$(sed -n 's/.*"Dir": "\(.*\)".*/\1/p' <<<"$json")
  [ -f "$modfile" ] && [ -d "$dir" ] || die "could not download github.com/argoproj/argo-rollouts@$ARGO_ROLLOUTS_VERSION"
  # Every replace line (in a block or on its own) `old [v] => new [v]` becomes -replace old[@v]=new[@v];
  # a local path (./x, ../x) points into the module's own directory.
  awk '/^replace[ \t]*\($/ {block = 1; next}
       block && /^\)/ {block = 0; next}
       block {print; next}
       /^replace[ \t]/ {sub(/^replace[ \t]+/, ""); print}' "$modfile" | sed 's|//.*||' \
  | while read -r line; do
      [ -n "$line" ] || continue
      read -r -a from <<<"${line%%=>*}"
      read -r -a to <<<"${line#*=>}"
      if [ -z "${to[1]:-}" ]; then
        case ${to[0]} in ./* | ../*) to=("$dir/${to[0]#./}") ;; esac
      fi
      go mod edit -replace "${from[0]}${from[1]:+@${from[1]}}=${to[0]}${to[1]:+@${to[1]}}"
    done
  go mod edit -require "github.com/argoproj/argo-rollouts@$ARGO_ROLLOUTS_VERSION"
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/argoproj/argo-rollouts/cmd/rollouts-controller"\n' >tools.go
  go mod tidy
  local pkg=github.com/argoproj/argo-rollouts/utils/version ldflags="-s -w"
  ldflags+=" -X $pkg.version=${ARGO_ROLLOUTS_VERSION#v} -X $pkg.gitTag=$ARGO_ROLLOUTS_VERSION"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  go build -trimpath -gcflags=all=-dwarf=false -ldflags "$ldflags" -o "$work/argo/rollouts-controller" \
    github.com/argoproj/argo-rollouts/cmd/rollouts-controller
  # The CRDs of the same release, as its kustomization lists them (not the kustomization itself,
  # so that `kubectl apply -f crds/` takes the directory as it is).
  mkdir -p "$ARGO_OUT"
  rm -rf "$ARGO_OUT/crds.tmp"
  mkdir "$ARGO_OUT/crds.tmp"
  install -m 0644 "$dir"/manifests/crds/*-crd.yaml "$ARGO_OUT/crds.tmp/"
  rm -rf "$ARGO_OUT/crds"
  mv "$ARGO_OUT/crds.tmp" "$ARGO_OUT/crds"
  mv "$work/argo/rollouts-controller" "$ARGO_OUT/rollouts-controller"
}

# helm: a wrapper module that requires Helm's release and builds its command, so that the
# version can be stamped in the way Helm's own Makefile does.
build_helm() {
  local pkg=helm.sh/helm/v4/internal/version ldflags="-s -w"
  mkdir -p "$work/helm"
  cd "$work/helm"
  go mod init rollguard.dev/controlplane/helm >/dev/null 2>&1
  go mod edit -go="$gover" -require "helm.sh/helm/v4@$HELM_VERSION"
  printf '//go:build tools\n\npackage tools\n\nimport _ "helm.sh/helm/v4/cmd/helm"\n' >tools.go
  go mod tidy
  ldflags+=" -X $pkg.version=$HELM_VERSION -X $pkg.gitTreeState=clean"
  go build -trimpath -gcflags=all=-dwarf=false -ldflags "$ldflags" -o "$work/helm/helm" helm.sh/helm/v4/cmd/helm
  mkdir -p "$HELM_OUT"
  mv "$work/helm/helm" "$HELM_OUT/helm"
}

build_kwok() {
  GOBIN="$OUT" go install -trimpath -gcflags=all=-dwarf=false -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
}

k8s_needed=()
for b in "${K8S_BINS[@]}"; do needs "$b" && k8s_needed+=("$b"); done
jobs_started=()
# launch NAME COST WHAT: run build_NAME in the background, logging to $work/NAME.log.
launch() {
  log "building $3 (about $(minutes "$2") min on its own)"
  ( set -e; "build_$1" ) >"$work/$1.log" 2>&1 &
  jobs_started+=("$1:$!")
}
needs etcd && launch etcd "${COST[etcd]}" "etcd $ETCD_VERSION"
[ ${#k8s_needed[@]} -gt 0 ] && launch k8s "${COST[k8s]}" "${k8s_needed[*]} $K8S_VERSION"
needs kwok && launch kwok "${COST[kwok]}" "kwok $KWOK_VERSION"
needs_argo && launch argo "${COST[argo]}" "rollouts-controller $ARGO_ROLLOUTS_VERSION"
needs helm && launch helm "${COST[helm]}" "helm $HELM_VERSION"
total_cost=0
needs etcd && total_cost=$((total_cost + COST[etcd]))
[ ${#k8s_needed[@]} -gt 0 ] && total_cost=$((total_cost + COST[k8s]))
needs kwok && total_cost=$((total_cost + COST[kwok]))
needs_argo && total_cost=$((total_cost + COST[argo]))
needs helm && total_cost=$((total_cost + COST[helm]))
log "side by side: about $(minutes "$total_cost") min in all (full logs in $work while it runs)"
failed=()
for job in "${jobs_started[@]}"; do
  name=${job%%:*}
  if wait "${job##*:}"; then
    log "built $name ($(( $(date +%s) - start ))s elapsed)"
  else
    tail -n 30 "$work/$name.log" >&2
    failed+=("$name")
  fi
done
[ ${#failed[@]} -eq 0 ] || die "building ${failed[*]} failed (its output above)"

# --- kwok stages: the node and pod lifecycle kwok plays, as shipped in its module -----------
if needs kwok-stages.yaml; then
  log "collecting kwok $KWOK_VERSION stages"
  dir=$(cd "$work" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -d "$dir" ] || die "could not download sigs.k8s.io/kwok@$KWOK_VERSION"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"
    cat "$dir/kustomize/stage/$f"
  done >"$OUT/kwok-stages.yaml.tmp"
  mv "$OUT/kwok-stages.yaml.tmp" "$OUT/kwok-stages.yaml"
fi

where="$OUT ($(du -sh "$OUT" | cut -f1))"
needs_argo && where+=" and $ARGO_OUT ($(du -sh "$ARGO_OUT" | cut -f1))"
needs helm && where+=" and $HELM_OUT ($(du -sh "$HELM_OUT" | cut -f1))"
log "built ${missing[*]} in $(( $(date +%s) - start ))s into $where"
echo "$OUT"
