#!/usr/bin/env bash
# Installs what rollguard's tests and demo need on a fresh Debian machine of this kind:
# Debian packages (prometheus, openssl, jq), a Python virtualenv with the project and its dev
# tools, and the control-plane binaries, the Argo Rollouts controller and helm (built from Go
# modules into a cache, only when missing).
# Idempotent: re-running it does only what is missing.
#
#   --build-in-background   start the control-plane build (the long part on a fresh machine)
#                           first and return without waiting for it; its log is
#                           $ROLLGUARD_CACHE/controlplane/build.log. `make demo` uses this to
#                           show something useful while it builds.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

background=false
[ "${1:-}" = "--build-in-background" ] && background=true

if ! command -v go >/dev/null 2>&1; then
  log "error: Go is not installed. The local Kubernetes control plane is built from Go modules;"
  log "       install Go >= 1.26 and run this again. (Nothing was skipped.)"
  exit 1
fi
# The control-plane build is CPU-bound and the rest mostly waits on downloads: it starts first
# and runs alongside them. build.sh serialises concurrent builds with a lock, so whoever needs
# the binaries next simply waits for this one.
CACHE=${ROLLGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rollguard}
mkdir -p "$CACHE/controlplane"
BUILD_LOG="$CACHE/controlplane/build.log"
if bash tools/controlplane/build.sh --check >/dev/null 2>&1; then
  build_pid=
else
  bash tools/controlplane/build.sh --announce
  nohup bash tools/controlplane/build.sh >"$BUILD_LOG" 2>&1 </dev/null &
  build_pid=$!
  log "control-plane build started in the background (log: $BUILD_LOG)"
fi

need_pkgs=()
command -v prometheus >/dev/null 2>&1 || need_pkgs+=(prometheus)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
command -v jq >/dev/null 2>&1 || need_pkgs+=(jq)
# A real Alertmanager for the notification tests (started on loopback by them, never as a service).
command -v prometheus-alertmanager >/dev/null 2>&1 || need_pkgs+=(prometheus-alertmanager)
# Headless Chromium and its driver for the dashboard's browser tests.
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_pkgs+=(chromium-driver)
# buildah and mmdebstrap build the operator image without a Docker daemon (tools/image/build.sh,
# `make image`, tests/integration/test_image.py); its base layer is built on first use.
command -v buildah >/dev/null 2>&1 || need_pkgs+=(buildah)
command -v mmdebstrap >/dev/null 2>&1 || need_pkgs+=(mmdebstrap)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  log "installing Debian packages: ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
# The Debian package may start a system Prometheus on :9090; rollguard runs its own on a
# free loopback port, so that one is left alone.

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY=$cand; break
    fi
  done
fi
[ -n "$PY" ] || { log "error: Python 3.11 is required"; exit 1; }

if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $PY"
  "$PY" -m venv .venv
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ] \
   || [ deploy/requirements.txt -nt .venv/.installed ]; then
  log "installing Python dependencies into .venv"
  .venv/bin/pip install -q --upgrade pip
  # Runtime dependencies exactly as pinned for the operator image (deploy/requirements.txt).
  .venv/bin/pip install -q -e '.[dev]' -c deploy/requirements.txt
  touch .venv/.installed
fi

if [ -n "$build_pid" ]; then
  if $background; then
    log "Python ready; the control plane is still building (tail -f $BUILD_LOG)"
    exit 0
  fi
  log "waiting for the control-plane build (full log: $BUILD_LOG)"
  tail -n +1 -f --pid="$build_pid" "$BUILD_LOG" | grep --line-buffered '^\[controlplane\]' >&2 || true
  wait "$build_pid" || { tail -n 30 "$BUILD_LOG" >&2; log "error: the control-plane build failed"; exit 1; }
fi
log "ready"
