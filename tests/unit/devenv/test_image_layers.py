"""devenv.image on a small OCI archive made here: what the config says about running the image,
and its layers unpacked for an overlay mount (OCI whiteouts become overlayfs ones)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from devenv.image import FILES_DIR, Image, container_argv, container_env, read_image, unpack_layers


def _tar(entries: dict[str, bytes | None]) -> bytes:
    """A tar of files (bytes) and directories (None)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _archive(path: Path, layers: list[bytes], config: dict[str, object]) -> Path:
    blobs: dict[str, bytes] = {}

    def add(data: bytes) -> dict[str, object]:
        blobs[_digest(data)] = data
        return {"digest": _digest(data), "size": len(data)}

    config = {**config, "rootfs": {"type": "layers", "diff_ids": [_digest(x) for x in layers]}}
    manifest = {
        "schemaVersion": 2,
        "config": add(json.dumps(config).encode()),
        "layers": [add(layer) for layer in layers],
    }
    index = {"schemaVersion": 2, "manifests": [add(json.dumps(manifest).encode())]}
    files = {"index.json": json.dumps(index).encode()}
    files |= {f"blobs/sha256/{d.split(':')[1]}": data for d, data in blobs.items()}
    path.write_bytes(_tar(dict(files)))
    return path


RUN = {"User": "10001:10001", "Entrypoint": ["rollguard"], "Cmd": ["run"], "Env": ["HOME=/tmp"]}


def test_the_config_says_who_runs_what(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "image.tar", [_tar({"etc/": None})], {"config": RUN})
    image = read_image(archive)
    assert (image.uid, image.gid, image.entrypoint, image.cmd) == (
        10001,
        10001,
        ("rollguard",),
        ("run",),
    )
    assert container_env(image, KUBECONFIG="/k") == {"HOME": "/tmp", "KUBECONFIG": "/k"}


def test_args_replace_the_cmd_and_the_layers_stack_highest_first(tmp_path: Path) -> None:
    image = Image(tmp_path, "10001", ("rollguard",), ("run",), (), "/", ())
    low, high = tmp_path / "low", tmp_path / "high"
    argv = container_argv(image, [low, high], mountpoint=tmp_path / "root", args=["version"])
    assert argv[-2:] == ["rollguard", "version"]
    assert f"{high}:{low}" in argv and FILES_DIR in argv
    assert container_argv(image, [low], mountpoint=tmp_path / "root")[-2:] == ["rollguard", "run"]


@pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts are character devices: mknod needs root")
def test_layers_unpack_once_with_overlay_whiteouts_and_stale_ones_go(tmp_path: Path) -> None:
    base = _tar({"app/": None, "app/old.py": b"old", "app/keep.py": b"keep", "etc/": None})
    top = _tar({"app/": None, "app/.wh.old.py": b"", "etc/.wh..wh..opq": b"", "etc/new": b"n"})
    image = read_image(_archive(tmp_path / "image.tar", [base, top], {"config": RUN}))
    cache = tmp_path / "layers"
    (cache / "sha256-stale").mkdir(parents=True)

    low, high = unpack_layers(image, cache=cache)

    assert (low / "app/keep.py").read_bytes() == b"keep"
    hidden = (high / "app/old.py").lstat()
    assert stat.S_ISCHR(hidden.st_mode) and hidden.st_rdev == os.makedev(0, 0)
    assert os.getxattr(high / "etc", "trusted.overlay.opaque") == b"y"
    assert (high / "etc/new").read_bytes() == b"n"
    assert sorted(p.name for p in cache.iterdir()) == sorted([low.name, high.name])
    (low / "marker").write_text("unpacked once")
    assert unpack_layers(image, cache=cache) == [low, high]
    assert (low / "marker").exists()
