"""Certificates and keys for the local control plane, made with the openssl command line.

Called by the launcher only. Everything is throwaway: a fresh CA per environment, short-lived
files under .dev/, loopback names only.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

DAYS = "30"


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def make_ca(*, directory: Path) -> KeyPair:
    """A self-signed CA that signs every serving and client certificate of the environment."""
    directory.mkdir(parents=True, exist_ok=True)
    pair = KeyPair(directory / "ca.crt", directory / "ca.key")
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", DAYS,
        "-keyout", pair.key, "-out", pair.cert, "-subj", "/CN=rollguard-dev-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        cwd=directory,
    )  # fmt: skip
    return pair


def issue(
    *,
    ca: KeyPair,
    directory: Path,
    name: str,
    common_name: str,
    groups: tuple[str, ...] = (),
    server_names: tuple[str, ...] = (),
    server_ips: tuple[str, ...] = (),
) -> KeyPair:
    """A certificate signed by ``ca``: a client certificate (CN = user, O = groups, as the API
    server reads them) or, with server names or IPs, a serving certificate."""
    subject = f"/CN={common_name}" + "".join(f"/O={g}" for g in groups)
    pair = KeyPair(directory / f"{name}.crt", directory / f"{name}.key")
    csr = directory / f"{name}.csr"
    ext = directory / f"{name}.ext"
    lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment"]
    if server_names or server_ips:
        lines.append("extendedKeyUsage=serverAuth,clientAuth")
        alt = [f"DNS:{n}" for n in server_names] + [f"IP:{ip}" for ip in server_ips]
        lines.append("subjectAltName=" + ",".join(alt))
    else:
        lines.append("extendedKeyUsage=clientAuth")
    ext.write_text("\n".join(lines) + "\n")
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", pair.key, "-out", csr,
             "-subj", subject, cwd=directory)  # fmt: skip
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial",
        "-days", DAYS, "-sha256", "-extfile", ext, "-out", pair.cert,
        cwd=directory,
    )  # fmt: skip
    csr.unlink()
    ext.unlink()
    return pair


def make_signing_key(*, directory: Path) -> KeyPair:
    """The ServiceAccount token signing key pair (``cert`` holds the public key)."""
    pair = KeyPair(directory / "sa.pub", directory / "sa.key")
    _openssl("genrsa", "-out", pair.key, "2048", cwd=directory)
    _openssl("rsa", "-in", pair.key, "-pubout", "-out", pair.cert, cwd=directory)
    return pair
