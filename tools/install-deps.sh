#!/usr/bin/env bash
# Installs what rollguard's tests and demo need on a fresh Debian machine of this kind:
# Debian packages (prometheus, openssl, jq), a Python virtualenv with the project and its dev
# tools, and the control-plane binaries (built from Go modules into a cache, only when missing).
# Idempotent: re-running it does only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

need_pkgs=()
command -v prometheus >/dev/null 2>&1 || need_pkgs+=(prometheus)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
command -v jq >/dev/null 2>&1 || need_pkgs+=(jq)
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

if ! command -v go >/dev/null 2>&1; then
  log "error: Go is not installed. The local Kubernetes control plane is built from Go modules;"
  log "       install Go >= 1.26 and run this again. (Nothing was skipped.)"
  exit 1
fi
bash tools/controlplane/build.sh >/dev/null
log "ready"
