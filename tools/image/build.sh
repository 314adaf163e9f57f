#!/usr/bin/env bash
# Builds the operator image rollguard:<version> without a Docker daemon, with buildah, to the
# same recipe as deploy/Dockerfile: Python 3.11, the runtime dependencies pinned in
# deploy/requirements.txt, the rollguard wheel of this checkout, user 10001, entrypoint
# `rollguard`, command `run`. Needs root, buildah and mmdebstrap (tools/install-deps.sh).
#
# Two layers:
#   base  Debian bookworm (minbase) + python3 + the wheels of deploy/requirements.txt + the user
#         10001. Built with mmdebstrap from Debian's packages (no registry), only when missing:
#         it is kept as the image rollguard-base:<key>, <key> a hash of its inputs
#         (BASE_RECIPE and deploy/requirements.txt).
#   app   the rollguard wheel of this checkout, rebuilt on every run (a few seconds).
#
# Everything lives in $ROLLGUARD_CACHE/image/: buildah's storage (storage/), the wheels, and the
# image as an OCI archive, whose path is the last line of stdout:
#   $ROLLGUARD_CACHE/image/rollguard-<version>.oci.tar
# Load it elsewhere with `podman load -i`, or copy it to a registry with
# `skopeo copy oci-archive:PATH docker://REGISTRY/rollguard:<version>`.
#
#   build.sh          build what is missing, then the app layer, then export the archive
#   build.sh --check  exit 0 when the base layer is cached, 1 when not; builds nothing
#
# Settings (environment):
#   ROLLGUARD_CACHE   cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/rollguard)
#   DEBIAN_MIRROR     Debian mirror (default: the one in /etc/apt/sources.list*, or
#                     http://deb.debian.org/debian)
#   DEBIAN_SECURITY_MIRROR  Debian's security archive (default: the mirror's /debian-security)
#   ROLLGUARD_IMAGE_REBUILD_BASE=1  build the base again although it is cached (Debian's
#                     security updates reach the base only this way)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

log() { printf '[image] %s\n' "$*" >&2; }
die() { printf '[image] error: %s\n' "$*" >&2; exit 1; }

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)
[ -n "$VERSION" ] || die "no version in pyproject.toml"
CACHE=${ROLLGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rollguard}/image
ARCHIVE="$CACHE/rollguard-$VERSION.oci.tar"
PY=${PYTHON:-$REPO/.venv/bin/python}

# What a run leaves behind if it fails part-way: temporary directories and working containers
# (mounted or not). Removed on every exit; on success the containers were committed already.
CLEAN_DIRS=()
CONTAINERS=()
cleanup() {
  local c d
  for c in "${CONTAINERS[@]}"; do
    bh umount "$c" >/dev/null 2>&1 || true
    bh rm "$c" >/dev/null 2>&1 || true
  done
  for d in "${CLEAN_DIRS[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT

# pip itself, run from its wheel inside the root filesystem, so that the image has no pip.
pip_wheel() {
  local wheel
  wheel=$(ls "$CACHE"/pip/pip-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ]; then
    "$PY" -m pip download -q --no-deps --only-binary=:all: --dest "$CACHE/pip" pip >&2
    wheel=$(ls "$CACHE"/pip/pip-*.whl | head -n 1)
  fi
  echo "$wheel"
}

mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local found
  found=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list* 2>/dev/null \
    | grep -oE 'https?://[^ ]+' | head -n 1 || true)
  echo "${found:-http://deb.debian.org/debian}"
}

build_base() {
  local started=$SECONDS work pip mirror_url security ctr
  work=$(mktemp -d "$CACHE/base.XXXXXX")
  CLEAN_DIRS+=("$work")
  log "building the base layer $BASE_IMAGE (Debian packages and pinned wheels; about 2 minutes)"
  # The pinned wheels, for CPython 3.11 on Linux (Debian bookworm's python3 is 3.11).
  "$PY" -m pip wheel -q --no-deps --wheel-dir "$CACHE/wheels/$BASE_KEY" \
    --requirement deploy/requirements.txt >&2
  pip=$(pip_wheel)
  mkdir -p "$work/wheels"
  cp "$CACHE/wheels/$BASE_KEY"/*.whl "$pip" "$work/wheels/"
  mirror_url=$(mirror)
  security=${DEBIAN_SECURITY_MIRROR:-${mirror_url%/debian*}/debian-security}
  mmdebstrap --quiet --mode=root --variant=minbase --include=python3,ca-certificates,tzdata \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook="mkdir -p \"\$1/wheels\" && cp -r '$work/wheels/.' \"\$1/wheels/\"" \
    --customize-hook="chroot \"\$1\" python3 /wheels/$(basename "$pip")/pip install -q \
      --no-index --no-deps --break-system-packages --disable-pip-version-check \
      --root-user-action=ignore \$(cd \"\$1/wheels\" && ls *.whl | grep -v '^pip-' | sed 's|^|/wheels/|')" \
    --customize-hook='rm -rf "$1/wheels" "$1"/var/log/* "$1"/var/cache/debconf/*-old' \
    --customize-hook='chroot "$1" useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin rollguard' \
    bookworm "$work/rootfs.tar" \
    "deb $mirror_url bookworm main" "deb $mirror_url bookworm-updates main" \
    "deb $security bookworm-security main" >&2
  ctr=$(bh from --quiet scratch)
  CONTAINERS+=("$ctr")
  bh add --quiet "$ctr" "$work/rootfs.tar" / >/dev/null
  bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --label "dev.rollguard.base-recipe=$BASE_RECIPE" "$ctr"
  bh commit --quiet --rm "$ctr" "$BASE_IMAGE" >/dev/null
  # Earlier bases (other keys) and their wheels are no longer needed.
  find "$CACHE/wheels" -mindepth 1 -maxdepth 1 ! -name "$BASE_KEY" -exec rm -rf {} +
  local old
  for old in $(bh images --format '{{.Name}}:{{.Tag}}' | grep '^localhost/rollguard-base:' \
    | grep -v ":$BASE_KEY\$" || true); do
    bh rmi "$old" >/dev/null 2>&1 || true
  done
  log "base layer built in $((SECONDS - started)) s"
}

build_app() {
  local started=$SECONDS work wheel pip ctr mnt previous
  work=$(mktemp -d "$CACHE/app.XXXXXX")
  CLEAN_DIRS+=("$work")
  # The wheel of this checkout, from a copy of only what the Dockerfile copies.
  mkdir -p "$work/src"
  cp -r pyproject.toml README.md operator "$work/src/"
  find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
  "$PY" -m pip wheel -q --no-deps --disable-pip-version-check --wheel-dir "$work/dist" \
    "$work/src" >&2
  wheel=$(ls "$work"/dist/rollguard-*.whl)
  pip=$(pip_wheel)
  ctr=$(bh from --quiet "$BASE_IMAGE")
  CONTAINERS+=("$ctr")
  mnt=$(bh mount "$ctr")
  mkdir -p "$mnt/wheels"
  cp "$wheel" "$pip" "$mnt/wheels/"
  chroot "$mnt" python3 "/wheels/$(basename "$pip")/pip" install -q --no-index --no-deps \
    --break-system-packages --disable-pip-version-check --root-user-action=ignore \
    "/wheels/$(basename "$wheel")" >&2
  rm -rf "$mnt/wheels"
  bh umount "$ctr" >/dev/null
  bh config --user 10001:10001 --entrypoint '["rollguard"]' --cmd run --workingdir / \
    --env PYTHONDONTWRITEBYTECODE=1 --env PYTHONUNBUFFERED=1 --env HOME=/tmp \
    --port 8080 --port 8081 \
    --label "org.opencontainers.image.title=rollguard" \
    --label "org.opencontainers.image.version=$VERSION" "$ctr"
  previous=$(bh images --quiet "localhost/rollguard:$VERSION" 2>/dev/null || true)
  bh commit --quiet --rm "$ctr" "localhost/rollguard:$VERSION" >/dev/null
  rm -f "$ARCHIVE.new"
  bh push --quiet "localhost/rollguard:$VERSION" "oci-archive:$ARCHIVE.new:rollguard:$VERSION"
  mv "$ARCHIVE.new" "$ARCHIVE"
  # The app layer of the previous build, now untagged.
  [ -z "$previous" ] || bh rmi "$previous" >/dev/null 2>&1 || true
  log "app layer built and exported in $((SECONDS - started)) s"
}


# What the base layer is made of; a change here (or to deploy/requirements.txt) rebuilds it.
BASE_RECIPE="bookworm minbase python3 ca-certificates tzdata; no docs; uid 10001; v1"
# The key covers the recipe's words, the pinned requirements and build_base's own text, so an
# edit of how the base is built rebuilds it.
BASE_KEY=$( { echo "$BASE_RECIPE"; cat deploy/requirements.txt; declare -f build_base; } \
  | sha256sum | cut -c1-16)
BASE_IMAGE="localhost/rollguard-base:$BASE_KEY"

# buildah with a storage of its own under the cache: overlay where the kernel has it (starting
# a container from the base is then free), else vfs, which copies the base for every build.
DRIVER=${ROLLGUARD_IMAGE_DRIVER:-$(grep -qw overlay /proc/filesystems && echo overlay || echo vfs)}
bh() {
  buildah --root "$CACHE/storage-$DRIVER" --runroot "$CACHE/run-$DRIVER" --storage-driver "$DRIVER" "$@"
}

if [ "${1:-}" = "--check" ]; then
  command -v buildah >/dev/null 2>&1 && bh inspect --type image "$BASE_IMAGE" >/dev/null 2>&1
  exit
fi

[ "$(id -u)" -eq 0 ] || die "run as root (buildah and mmdebstrap build a root filesystem)"
for tool in buildah mmdebstrap; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (bash tools/install-deps.sh)"
done
mkdir -p "$CACHE/wheels" "$CACHE/pip"
# One build at a time: `make image` and the image test may run together.
exec 9>"$CACHE/.lock"
flock -n 9 || { log "waiting for another image build to finish"; flock 9; }

if [ "${ROLLGUARD_IMAGE_REBUILD_BASE:-}" = 1 ] \
  || ! bh inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
  build_base
fi
build_app
echo "$ARCHIVE"
