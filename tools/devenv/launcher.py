"""The local environment: a real control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok), the Argo Rollouts controller with its CRDs, Prometheus and the workload
simulator, all on loopback.

Used by ``make dev-up`` / ``make dev-down`` (through ``python -m devenv``), by the pytest
fixtures and by the demo. ``Environment`` starts everything on free ports, waits until it is
ready, writes a kubeconfig with the contexts admin, alice and mallory plus ``env.json``, and
tears everything down again, leaving no process behind.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from devenv import certs
from devenv.processes import Child, NotReadyError, free_port, port_is_free, start, wait_until

REPO = Path(__file__).resolve().parents[2]
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
FAKE_NODES = 2
USERS: dict[str, tuple[str, ...]] = {
    # user -> groups. admin is cluster-admin through system:masters.
    "admin": ("system:masters",),
    "alice": ("ml-oncall",),
    "mallory": (),
}


@dataclass(frozen=True)
class EnvInfo:
    """What ``env.json`` holds: where everything is."""

    kubeconfig: str
    api_server: str
    prometheus_url: str
    simulator_url: str
    binaries: dict[str, str]
    work_dir: str
    pid: int
    # The Argo Rollouts controller's endpoints; empty when it is not built (or not ours).
    argo_rollouts_metrics_url: str = ""
    argo_rollouts_healthz_url: str = ""

    @classmethod
    def load(cls, path: Path) -> EnvInfo:
        return cls(**json.loads(path.read_text()))


BUILD_SCRIPT = REPO / "tools" / "controlplane" / "build.sh"


def controlplane_cached() -> bool:
    """Whether every control-plane binary is in the cache (nothing to build)."""
    return subprocess.run(["bash", str(BUILD_SCRIPT), "--check"], check=False).returncode == 0


def build_dir() -> Path:
    """The cache directory of the control-plane binaries (built or not)."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--dir"], stdout=subprocess.PIPE, text=True, check=True
    )
    return Path(result.stdout.strip())


def argo_rollouts_dir() -> Path:
    """The cache directory of Argo Rollouts: ``rollouts-controller`` and ``crds/`` (built or
    not; ``build_controlplane`` builds it along with the control plane)."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--argo-dir"], stdout=subprocess.PIPE, text=True, check=True
    )
    return Path(result.stdout.strip())


def helm_binary() -> Path:
    """The helm CLI in the cache (built or not; ``build_controlplane`` builds it along with the
    control plane)."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--helm-dir"], stdout=subprocess.PIPE, text=True, check=True
    )
    return Path(result.stdout.strip()) / "helm"


def controlplane_build_log() -> Path:
    """Where a background build (``install-deps.sh --build-in-background``) writes its log."""
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    cache = os.environ.get("ROLLGUARD_CACHE") or str(Path(xdg) / "rollguard")
    return Path(cache) / "controlplane" / "build.log"


def build_controlplane() -> Path:
    """The directory of the control-plane binaries, building them first when the cache lacks
    them (progress goes to stderr)."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"building the control plane failed (exit {result.returncode})")
    return Path(result.stdout.strip().splitlines()[-1])


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


class Environment:
    """One local environment under ``work_dir``. Use as a context manager or call ``start``
    and ``stop``; ``stop`` is safe to call more than once."""

    def __init__(
        self,
        *,
        work_dir: Path,
        bin_dir: Path,
        argo_dir: Path | None = None,
        seed: int = 7,
        scrape: str = "1s",
        sim_families: Sequence[str] | None = None,
    ) -> None:
        """``argo_dir``: where Argo Rollouts is cached (None: where build.sh puts it); the
        environment starts without it when it is not built there. ``sim_families``: the
        simulator's ``--families`` (None: its default, all of them); a benchmark passes ``()``
        to serve the model server's own families only."""
        self.work_dir = work_dir
        self.bin_dir = bin_dir
        self.argo_dir = argo_dir if argo_dir is not None else argo_rollouts_dir()
        self.seed = seed
        self.scrape = scrape
        self.sim_families = sim_families
        self.children: list[Child] = []
        self._argv: dict[str, tuple[list[Any], tuple[int, ...], dict[str, str] | None]] = {}
        self.info: EnvInfo | None = None

    def __enter__(self) -> Environment:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> EnvInfo:
        started = time.monotonic()
        try:
            return self._start(started)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        # Reverse order: clients before the API server, the API server before etcd.
        for child in reversed(self.children):
            child.stop()
        self.children.clear()

    def _start(self, started: float) -> EnvInfo:
        # A fresh cluster every time: nothing of an earlier run's state is reused.
        for stale in ("pki", "logs", "etcd", "prometheus"):
            shutil.rmtree(self.work_dir / stale, ignore_errors=True)
        (self.work_dir / "env.json").unlink(missing_ok=True)
        pki = self.work_dir / "pki"
        logs = self.work_dir / "logs"
        for d in (pki, logs):
            d.mkdir(parents=True)
        ca = certs.make_ca(directory=pki)
        sa = certs.make_signing_key(directory=pki)
        serving = certs.issue(
            ca=ca,
            directory=pki,
            name="apiserver",
            common_name="kube-apiserver",
            server_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
            ),
            server_ips=("127.0.0.1", "10.96.0.1"),
        )
        clients = {
            user: certs.issue(ca=ca, directory=pki, name=user, common_name=user, groups=groups)
            for user, groups in USERS.items()
        }
        components = {
            "kube-controller-manager": certs.issue(
                ca=ca, directory=pki, name="kcm", common_name="system:kube-controller-manager"
            ),
            "kube-scheduler": certs.issue(
                ca=ca, directory=pki, name="scheduler", common_name="system:kube-scheduler"
            ),
            "kwok": certs.issue(
                ca=ca, directory=pki, name="kwok", common_name="kwok", groups=("system:masters",)
            ),
        }
        if self._argo_built():
            # cluster-admin, as the ClusterRole of Argo's install manifest nearly is.
            components["argo-rollouts"] = certs.issue(
                ca=ca,
                directory=pki,
                name="argo-rollouts",
                common_name="argo-rollouts",
                groups=("system:masters",),
            )

        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        api_url = f"https://127.0.0.1:{api_port}"
        etcd = self._run(
            "etcd",
            [
                self.bin_dir / "etcd",
                "--name=default",
                f"--data-dir={self.work_dir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
            ports=(etcd_port, peer_port),
        )
        wait_until(
            "etcd",
            lambda: (
                b'"health":"true"'
                in urllib.request.urlopen(f"http://127.0.0.1:{etcd_port}/health", timeout=1).read()
            ),
            timeout=30,
            children=[etcd],
        )

        apiserver = self._run(
            "kube-apiserver",
            [
                self.bin_dir / "kube-apiserver",
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={ca.cert}",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--authorization-mode=Node,RBAC",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--cert-dir={pki}",
                "--profiling=false",
                "--endpoint-reconciler-type=none",
            ],
            ports=(api_port,),
        )
        ctx = ssl.create_default_context(cafile=str(ca.cert))
        ctx.load_cert_chain(str(clients["admin"].cert), str(clients["admin"].key))

        def api_ready() -> bool:
            with urllib.request.urlopen(f"{api_url}/readyz", context=ctx, timeout=2) as resp:
                return bool(resp.status == 200)

        wait_until("kube-apiserver /readyz", api_ready, timeout=90, children=[etcd, apiserver])

        kubeconfig = self.work_dir / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(self._kubeconfig(api_url, ca, clients)))
        kubectl = [str(self.bin_dir / "kubectl"), f"--kubeconfig={kubeconfig}", "--context=admin"]
        # Applied while the other components start: kubectl takes a second or so over them.
        argo_crds = self._apply_argo_crds(kubectl) if self._argo_built() else None
        component_configs = {
            name: self._component_kubeconfig(name, api_url, ca, pair)
            for name, pair in components.items()
        }

        kcm_port, sched_port = free_port(), free_port()
        kcm = self._run(
            "kube-controller-manager",
            [
                self.bin_dir / "kube-controller-manager",
                f"--kubeconfig={component_configs['kube-controller-manager']}",
                f"--authentication-kubeconfig={component_configs['kube-controller-manager']}",
                f"--authorization-kubeconfig={component_configs['kube-controller-manager']}",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                f"--service-account-private-key-file={sa.key}",
                f"--root-ca-file={ca.cert}",
                "--use-service-account-credentials=true",
                f"--cluster-cidr={POD_CIDR}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--leader-elect=false",
                "--controllers=*,-nodeipam,-persistentvolume-binder,-attachdetach",
            ],
            ports=(kcm_port,),
        )
        scheduler = self._run(
            "kube-scheduler",
            [
                self.bin_dir / "kube-scheduler",
                f"--kubeconfig={component_configs['kube-scheduler']}",
                f"--authentication-kubeconfig={component_configs['kube-scheduler']}",
                f"--authorization-kubeconfig={component_configs['kube-scheduler']}",
                "--bind-address=127.0.0.1",
                f"--secure-port={sched_port}",
                "--leader-elect=false",
            ],
            ports=(sched_port,),
        )
        kwok = self._run(
            "kwok",
            [
                self.bin_dir / "kwok",
                f"--kubeconfig={component_configs['kwok']}",
                f"--config={self._kwok_config()}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--cidr={POD_CIDR}",
                "--node-ip=127.0.0.1",
                "--node-lease-duration-seconds=40",
            ],
        )
        control_plane = [etcd, apiserver, kcm, scheduler, kwok]
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        for name, port in (("kube-controller-manager", kcm_port), ("kube-scheduler", sched_port)):
            wait_until(
                f"{name} /healthz",
                lambda p=port: (
                    urllib.request.urlopen(  # type: ignore[misc]
                        f"https://127.0.0.1:{p}/healthz", context=insecure, timeout=2
                    ).status
                    == 200
                ),
                timeout=60,
                children=control_plane,
            )

        nodes = [self._fake_node(i) for i in range(FAKE_NODES)]
        created = subprocess.run(
            [*kubectl, "create", "-f", "-"],
            input=yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": nodes}),
            text=True,
            check=False,
            capture_output=True,
        )
        if created.returncode != 0:
            raise NotReadyError(f"creating the fake nodes failed: {created.stderr.strip()}")

        def nodes_ready() -> bool:
            out = subprocess.run(
                [*kubectl, "get", "nodes", "-o",
                 "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status}{' '}{end}"],
                capture_output=True, text=True, check=False,
            ).stdout  # fmt: skip
            return out.split() == ["True"] * FAKE_NODES

        def default_service_account() -> bool:
            return (
                subprocess.run(
                    [*kubectl, "get", "serviceaccount", "default", "-n", "default"],
                    capture_output=True,
                    check=False,
                ).returncode
                == 0
            )

        wait_until("kwok nodes Ready", nodes_ready, timeout=60, children=control_plane)
        wait_until(
            "default ServiceAccount", default_service_account, timeout=60, children=control_plane
        )
        argo_urls = self._start_argo_rollouts(
            kubectl=kubectl,
            crds=argo_crds,
            kubeconfig=component_configs.get("argo-rollouts"),
            control_plane=control_plane,
        )

        sim_port = free_port()
        families = []
        if self.sim_families is not None:
            families = [f"--families={','.join(self.sim_families) or 'none'}"]
        simulator = self._run(
            "simulator",
            [
                sys.executable, "-m", "devenv.workload.server",
                f"--kubeconfig={kubeconfig}", "--context=admin",
                "--host=127.0.0.1", f"--port={sim_port}", f"--seed={self.seed}", *families,
            ],
            ports=(sim_port,),
            env={"PYTHONPATH": str(REPO / "tools")},
        )  # fmt: skip
        sim_url = f"http://127.0.0.1:{sim_port}"
        wait_until(
            "workload simulator",
            lambda: urllib.request.urlopen(f"{sim_url}/healthz", timeout=1).status == 200,
            timeout=30,
            children=[simulator],
        )

        prom_port = free_port()
        prometheus = self._run(
            "prometheus",
            [
                shutil.which("prometheus") or "prometheus",
                f"--config.file={self._prometheus_config(sim_port)}",
                f"--storage.tsdb.path={self.work_dir / 'prometheus'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--storage.tsdb.retention.time=1d",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            ports=(prom_port,),
        )
        prom_url = f"http://127.0.0.1:{prom_port}"
        wait_until(
            "Prometheus /-/ready",
            lambda: urllib.request.urlopen(f"{prom_url}/-/ready", timeout=1).status == 200,
            timeout=60,
            children=[prometheus],
        )

        self.info = EnvInfo(
            kubeconfig=str(kubeconfig),
            api_server=api_url,
            prometheus_url=prom_url,
            simulator_url=sim_url,
            binaries={
                name: str(self.bin_dir / name)
                for name in ("etcd", "kube-apiserver", "kube-controller-manager",
                             "kube-scheduler", "kubectl", "kwok")
            } | {"prometheus": shutil.which("prometheus") or "prometheus"}
              | ({"rollouts-controller": str(self._argo_controller)} if argo_urls else {}),
            work_dir=str(self.work_dir),
            pid=os.getpid(),
            argo_rollouts_metrics_url=argo_urls[0] if argo_urls else "",
            argo_rollouts_healthz_url=argo_urls[1] if argo_urls else "",
        )  # fmt: skip
        (self.work_dir / "env.json").write_text(json.dumps(asdict(self.info), indent=2) + "\n")
        print(
            f"[devenv] ready in {time.monotonic() - started:.1f}s: API {api_url}, "
            f"Prometheus {prom_url}, simulator {sim_url}",
            file=sys.stderr,
        )
        return self.info

    # -- Argo Rollouts ---------------------------------------------------------------------

    @property
    def _argo_controller(self) -> Path:
        return self.argo_dir / "rollouts-controller"

    def _argo_built(self) -> bool:
        return self._argo_controller.is_file() and (self.argo_dir / "crds").is_dir()

    def _apply_argo_crds(self, kubectl: list[str]) -> subprocess.Popen[str]:
        """Start applying Argo Rollouts' CRDs from the cache; ``_start_argo_rollouts`` waits."""
        # Server-side: the CRDs are too large for the last-applied annotation of a client-side
        # apply.
        return subprocess.Popen(
            [*kubectl, "apply", "--server-side", "--field-manager=devenv", "-o", "name",
             "-f", str(self.argo_dir / "crds")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip

    def _start_argo_rollouts(
        self,
        *,
        kubectl: list[str],
        crds: subprocess.Popen[str] | None,
        kubeconfig: Path | None,
        control_plane: list[Child],
    ) -> tuple[str, str] | None:
        """Wait for Argo Rollouts' CRDs to be established and start its controller; returns
        its metrics and healthz URLs, or None (said once) when it is not built."""
        if crds is None or kubeconfig is None:
            print(
                f"[devenv] Started without Argo Rollouts: {self._argo_controller} or its crds/ "
                f"is missing (tools/controlplane/build.sh builds it)",
                file=sys.stderr,
            )
            return None
        try:
            applied, problem = crds.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            crds.kill()
            crds.communicate()
            raise NotReadyError("applying the Argo Rollouts CRDs took over 60s") from None
        if crds.returncode != 0:
            raise NotReadyError(f"applying the Argo Rollouts CRDs failed: {problem.strip()}")
        established = subprocess.run(
            [*kubectl, "wait", "--for=condition=Established", "--timeout=60s", *applied.split()],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if established.returncode != 0:
            raise NotReadyError(
                f"the Argo Rollouts CRDs were not established: {established.stderr.strip()}"
            )
        metrics_port, healthz_port = free_port(), free_port()
        while healthz_port == metrics_port:
            healthz_port = free_port()
        controller = self._run(
            "rollouts-controller",
            [
                self._argo_controller,
                f"--kubeconfig={kubeconfig}",
                "--namespaced=false",
                "--leader-elect=false",
                f"--metricsPort={metrics_port}",
                f"--healthzPort={healthz_port}",
                "--loglevel=info",
                "--logformat=text",
            ],
            ports=(metrics_port, healthz_port),
        )
        metrics_url = f"http://127.0.0.1:{metrics_port}"
        healthz_url = f"http://127.0.0.1:{healthz_port}"
        wait_until(
            "rollouts-controller /healthz",
            lambda: urllib.request.urlopen(f"{healthz_url}/healthz", timeout=1).status == 200,
            timeout=30,
            children=[*control_plane, controller],
        )
        return metrics_url, healthz_url

    # -- helpers --------------------------------------------------------------------------

    def _run(
        self,
        name: str,
        argv: list[Any],
        *,
        ports: tuple[int, ...] = (),
        env: dict[str, str] | None = None,
    ) -> Child:
        child = start(name, argv, log_dir=self.work_dir / "logs", ports=ports, env=env)
        self.children.append(child)
        self._argv[name] = (argv, ports, env)
        return child

    def bounce(self, *, down_for: float = 3.0) -> float:
        """Stop kube-apiserver and etcd (SIGTERM), wait ``down_for`` seconds, start them again
        with the same data and flags; returns the seconds until /readyz answered again."""
        by_name = {c.name: c for c in self.children}
        for name in ("kube-apiserver", "etcd"):
            by_name[name].stop()
        time.sleep(down_for)
        began = time.monotonic()
        for name in ("etcd", "kube-apiserver"):
            argv, ports, env = self._argv[name]
            fresh = start(name, argv, log_dir=self.work_dir / "logs", ports=ports, env=env)
            self.children[self.children.index(by_name[name])] = fresh
            by_name[name] = fresh
        assert self.info is not None
        api_url = self.info.api_server
        ctx = ssl.create_default_context(cafile=str(self.work_dir / "pki" / "ca.crt"))
        ctx.load_cert_chain(
            str(self.work_dir / "pki" / "admin.crt"), str(self.work_dir / "pki" / "admin.key")
        )

        def api_ready() -> bool:
            with urllib.request.urlopen(f"{api_url}/readyz", context=ctx, timeout=2) as resp:
                return bool(resp.status == 200)

        wait_until(
            "kube-apiserver /readyz after the restart",
            api_ready,
            timeout=90,
            children=[by_name["etcd"], by_name["kube-apiserver"]],
        )
        return time.monotonic() - began

    def _kubeconfig(
        self, api_url: str, ca: certs.KeyPair, clients: dict[str, certs.KeyPair]
    ) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "rollguard-dev",
                    "cluster": {"server": api_url, "certificate-authority-data": _b64(ca.cert)},
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate-data": _b64(pair.cert),
                        "client-key-data": _b64(pair.key),
                    },
                }
                for user, pair in clients.items()
            ],
            "contexts": [
                {"name": user, "context": {"cluster": "rollguard-dev", "user": user}}
                for user in clients
            ],
            "current-context": "admin" if "admin" in clients else next(iter(clients)),
        }

    def _component_kubeconfig(
        self, name: str, api_url: str, ca: certs.KeyPair, pair: certs.KeyPair
    ) -> Path:
        path = self.work_dir / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(self._kubeconfig(api_url, ca, {name: pair})))
        return path

    def _kwok_config(self) -> Path:
        # Stages come with the kwok module; build.sh puts them beside the binaries.
        return self.bin_dir / "kwok-stages.yaml"

    def _prometheus_config(self, sim_port: int) -> Path:
        config = {
            "global": {"scrape_interval": self.scrape, "evaluation_interval": self.scrape},
            "scrape_configs": [
                {
                    "job_name": "model-serving",
                    "honor_labels": True,
                    "scrape_interval": self.scrape,
                    "static_configs": [{"targets": [f"127.0.0.1:{sim_port}"]}],
                }
            ],
        }
        path = self.work_dir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    @staticmethod
    def _fake_node(index: int) -> dict[str, Any]:
        name = f"kwok-node-{index}"
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "spec": {"podCIDR": f"10.244.{index}.0/24"},
        }


def probe_stopped(info: EnvInfo) -> list[str]:
    """Ports of ``info`` that still answer (empty when the environment is fully gone)."""
    urls = [info.api_server, info.prometheus_url, info.simulator_url]
    urls += [u for u in (info.argo_rollouts_metrics_url, info.argo_rollouts_healthz_url) if u]
    busy = []
    for url in urls:
        port = int(url.rsplit(":", 1)[1])
        if not port_is_free(port):
            busy.append(url)
    return busy


__all__ = [
    "EnvInfo",
    "Environment",
    "NotReadyError",
    "argo_rollouts_dir",
    "build_controlplane",
    "helm_binary",
    "probe_stopped",
]
