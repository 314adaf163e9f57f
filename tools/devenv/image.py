"""The operator image of tools/image/build.sh, run the way a container runtime runs it, without
one: its layers unpacked into the cache and stacked as an overlay with no writable layer (a
read-only root filesystem), a tmpfs on /tmp, its entrypoint run as its user with no
capabilities and no new privileges, in mount and PID namespaces of its own, on the host's
network (everything here listens on loopback).

Used by the image integration test; needs root (the build and the mounts do).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from devenv.launcher import REPO, EnvInfo
from devenv.operatorproc import OperatorProcess, two_free_ports
from devenv.testing import Kubectl, apply_deploy, service_account_kubeconfig

BUILD_SCRIPT = REPO / "tools" / "image" / "build.sh"
# Where the container finds the files given to it (``files``): a tmpfs, as Kubernetes mounts
# a Secret.
FILES_DIR = "/run/secrets/rollguard"
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"


def image_cache() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rollguard"
    return Path(os.environ.get("ROLLGUARD_CACHE") or default) / "image"


def build_image() -> Path:
    """Build the image (the base layer only when missing) and return its OCI archive."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        tail = "\n".join(result.stderr.splitlines()[-15:])
        raise RuntimeError(f"tools/image/build.sh exited with {result.returncode}:\n{tail}")
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class Image:
    """What the image's OCI config says about running it, and where its layers are."""

    archive: Path
    user: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: tuple[str, ...]
    working_dir: str
    layers: tuple[tuple[str, str], ...]  # (diff id, blob path in the archive), lowest first

    @property
    def uid(self) -> int:
        return int(self.user.split(":", 1)[0])

    @property
    def gid(self) -> int:
        parts = self.user.split(":", 1)
        return int(parts[1]) if len(parts) == 2 else self.uid


def _blob(archive: tarfile.TarFile, digest: str) -> IO[bytes]:
    algorithm, value = digest.split(":", 1)
    found = archive.extractfile(f"blobs/{algorithm}/{value}")
    if found is None:
        raise ValueError(f"blob {digest} is not a file in {archive.name!r}")
    return found


def read_image(archive: Path) -> Image:
    """The image of an OCI archive holding one image."""
    with tarfile.open(archive) as outer:
        index: dict[str, Any] = json.load(_blob_or_file(outer, "index.json"))
        manifest: dict[str, Any] = json.load(_blob(outer, index["manifests"][0]["digest"]))
        config: dict[str, Any] = json.load(_blob(outer, manifest["config"]["digest"]))
    run = config.get("config") or {}
    diff_ids: list[str] = config["rootfs"]["diff_ids"]
    blobs = [layer["digest"] for layer in manifest["layers"]]
    if len(diff_ids) != len(blobs):
        raise ValueError(f"{archive}: {len(blobs)} layers but {len(diff_ids)} diff_ids")
    return Image(
        archive=archive,
        user=run.get("User") or "0",
        entrypoint=tuple(run.get("Entrypoint") or ()),
        cmd=tuple(run.get("Cmd") or ()),
        env=tuple(run.get("Env") or ()),
        working_dir=run.get("WorkingDir") or "/",
        layers=tuple(zip(diff_ids, blobs, strict=True)),
    )


def _blob_or_file(archive: tarfile.TarFile, name: str) -> IO[bytes]:
    found = archive.extractfile(name)
    if found is None:
        raise ValueError(f"{name} is not a file in {archive.name!r}")
    return found


def _extract_layer(layer: IO[bytes], dest: Path) -> None:
    """A layer tar into ``dest``, its OCI whiteouts turned into overlayfs ones (a 0/0
    character device for a deleted path, an xattr for a directory whose lower content is
    hidden), so that the directory can be a lower layer of an overlay mount."""
    with tarfile.open(fileobj=layer, mode="r|*") as tar:
        for member in tar:
            parent, _, name = member.name.rpartition("/")
            if name == _OPAQUE:
                directory = dest / parent
                directory.mkdir(parents=True, exist_ok=True)
                os.setxattr(directory, "trusted.overlay.opaque", b"y")
            elif name.startswith(_WHITEOUT):
                hidden = dest / parent / name[len(_WHITEOUT) :]
                hidden.parent.mkdir(parents=True, exist_ok=True)
                os.mknod(hidden, stat.S_IFCHR | 0o000, os.makedev(0, 0))
            else:
                tar.extract(member, dest, numeric_owner=True, filter="fully_trusted")


def unpack_layers(image: Image, *, cache: Path) -> list[Path]:
    """Each layer of ``image`` unpacked under ``cache``, named by its diff id and unpacked
    only when missing (a rebuilt image shares its base layer with the last one); layers of
    other images are removed. Returns the directories, lowest layer first."""
    cache.mkdir(parents=True, exist_ok=True)
    dirs: list[Path] = []
    with tarfile.open(image.archive) as outer:
        for diff_id, blob in image.layers:
            target = cache / diff_id.replace(":", "-")
            if not target.is_dir():
                partial = target.with_name(target.name + ".partial")
                shutil.rmtree(partial, ignore_errors=True)
                partial.mkdir()
                _extract_layer(_blob(outer, blob), partial)
                partial.rename(target)
            dirs.append(target)
    for other in cache.iterdir():
        if other not in dirs:
            shutil.rmtree(other, ignore_errors=True)
    return dirs


# Runs as root in the new mount and PID namespaces: the mounts, then the image's entrypoint
# as its user. Positional parameters: the mount point, the layers (highest first, as overlayfs
# wants them), the host directory of ``files`` and where they go in the container, uid, gid,
# the working directory, then the command line.
_CONTAINER_SCRIPT = r"""
set -eu
root=$1 lower=$2 files=$3 files_dir=$4 uid=$5 gid=$6 wd=$7
shift 7
mount -t overlay overlay -o "lowerdir=$lower" "$root"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t tmpfs -o nosuid,nodev,mode=1777,size=64m tmpfs "$root/tmp"
mount -t tmpfs -o nosuid,noexec,mode=755,size=1m tmpfs "$root/dev"
for dev in null zero random urandom; do
  touch "$root/dev/$dev"
  mount --bind "/dev/$dev" "$root/dev/$dev"
done
mount -t tmpfs -o nosuid,nodev,noexec,mode=755,size=1m tmpfs "$root/run"
mkdir -p "$root$files_dir"
if [ -n "$files" ]; then cp -r "$files/." "$root$files_dir/"; fi
chown -R "$uid:$gid" "$root$files_dir"
chmod -R go-rwx "$root$files_dir"
exec setpriv --nnp -- unshare --root="$root" --wd="$wd" --setgid="$gid" --setuid="$uid" -- "$@"
"""


def container_argv(
    image: Image,
    layers: Sequence[Path],
    *,
    mountpoint: Path,
    args: Sequence[str] | None = None,
    files: Path | None = None,
) -> list[str]:
    """The command line that runs ``image`` (its entrypoint with ``args``, or its cmd, as
    Kubernetes' ``args`` replace the cmd) on the overlay of ``layers`` at ``mountpoint``, with
    the files of the host directory ``files`` in ``FILES_DIR``. Run it with
    ``container_env``."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    lower = ":".join(str(layer) for layer in reversed(layers))
    command = [*image.entrypoint, *(image.cmd if args is None else args)]
    if not command:
        raise ValueError(f"{image.archive}: the image has neither entrypoint nor cmd")
    return [
        "unshare", "--mount", "--pid", "--fork", "--kill-child", "--propagation=private",
        "sh", "-c", _CONTAINER_SCRIPT, "container",
        str(mountpoint), lower, str(files or ""), FILES_DIR, str(image.uid), str(image.gid),
        image.working_dir, *command,
    ]  # fmt: skip


def container_env(image: Image, **extra: str) -> dict[str, str]:
    """The environment of the container: the image's, then ``extra``; nothing of the host's."""
    env = dict(entry.split("=", 1) for entry in image.env)
    return {**env, **extra}


def container_pid(runner_pid: int) -> int | None:
    """The host pid of the container's first process (the entrypoint), the child of the
    ``unshare`` that ``container_argv`` starts; None when it has none (yet)."""
    with contextlib.suppress(OSError, ValueError):
        children = Path(f"/proc/{runner_pid}/task/{runner_pid}/children").read_text().split()
        return int(children[0]) if children else None
    return None


def run_inside(pid: int, image: Image, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """``argv`` in the mount namespace and root of the container process ``pid``, as the
    image's user: what that user may do there (write to the root filesystem, say)."""
    enter = [f"--target={pid}", "--mount", "--root", "--wd"]
    user = [f"--setgid={image.gid}", f"--setuid={image.uid}"]
    return subprocess.run(
        ["nsenter", *enter, *user, "--", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def start_image_operator(
    env: EnvInfo,
    kubectl: Kubectl,
    work: Path,
    image: Image,
    layers: Sequence[Path],
    *,
    extra: Sequence[str] = (),
) -> OperatorProcess:
    """``rollguard run`` from the image, as deploy/'s ServiceAccount (its kubeconfig in
    ``FILES_DIR``), with the settings ``start_operator`` gives the operator process and
    ``extra``; its audit lines go to its log (stdout, as in deploy/)."""
    apply_deploy(kubectl, REPO)
    files = work / "files"
    files.mkdir(parents=True, exist_ok=True)
    service_account_kubeconfig(
        env, kubectl, namespace="rollguard-system", name="rollguard", path=files / "kubeconfig"
    )
    args = [
        "run",
        f"--prometheus-url={env.prometheus_url}",
        f"--metrics-port={two_free_ports()}",
        "--scrape-interval=1",
        "--decision-poll=1",
        "--keep-decisions=2",
        *extra,
    ]
    proc = OperatorProcess(
        argv=container_argv(image, layers, mountpoint=work / "root", args=args, files=files),
        env=container_env(image, KUBECONFIG=f"{FILES_DIR}/kubeconfig"),
        log=work / "operator.log",
        audit=work / "audit.jsonl",
    )
    proc.start()
    return proc
