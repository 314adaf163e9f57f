"""What ``rollguard run`` needs before it starts, and what to say when something is missing.

``assess`` decides from facts gathered once at start-up (``execution.access``): the kinds the
API server serves, the peering objects, the identity the operator runs as and what that
identity may do. It writes nothing; the caller logs its lines, exits on a problem, or runs in
the peering mode it chose. Every problem names the command that fixes it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

CRD_FIX = "kubectl apply -f crds/   (or the whole install: kubectl apply -k deploy/)"
PEERING_FIX = "kubectl apply -f deploy/peering.yaml"
RBAC_FIX = (
    "run as the operator's ServiceAccount (kubectl apply -k deploy/ runs it in-cluster; "
    "out of the cluster see docs/operating/running.md#run-it-outside-the-cluster), "
    "or grant the missing verbs"
)

ADMISSION_POLICY = "rollguard-approval-identity"  # deploy/approval-policy.yaml
OWN = "rollguard.dev"
PEERING_GROUP = "kopf.dev"
CLUSTER_PEERING, NAMESPACED_PEERING = "clusterkopfpeerings", "kopfpeerings"


@dataclass(frozen=True, order=True)
class Permission:
    """One verb on one resource, checked in every watched namespace (or cluster-wide)."""

    verb: str
    group: str
    resource: str

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}{'.' + self.group if self.group else ''}"


def _perms(group: str, resources: Sequence[str], verbs: Sequence[str]) -> list[Permission]:
    return [Permission(v, group, r) for r in resources for v in verbs]


KINDS = ("rollbackpolicies", "modeldeployments", "rollbackdecisions")

PERMISSIONS: tuple[Permission, ...] = tuple(
    _perms(OWN, ("rollbackpolicies", "modeldeployments"), ("list", "watch", "patch"))
    + _perms(OWN, ("rollbackdecisions",), ("list", "watch", "create", "patch", "delete"))
    + _perms(OWN, [f"{k}/status" for k in KINDS], ("patch",))
    + _perms("apps", ("deployments",), ("get", "list", "watch", "patch"))
    + _perms("apps", ("replicasets",), ("list", "watch"))
    + _perms("apps", ("statefulsets",), ("get", "patch"))
    + _perms("apps", ("controllerrevisions",), ("list",))
    + _perms("argoproj.io", ("rollouts",), ("get", "patch"))
    + _perms("argoproj.io", ("rollouts/status",), ("patch",))
    + _perms("events.k8s.io", ("events",), ("create",))
)
"""What the operator does with the API, and so what it checks before it starts. Every entry
is granted by deploy/rbac.yaml (a unit test checks)."""

PEERING_PERMISSIONS: tuple[Permission, ...] = tuple(
    _perms(PEERING_GROUP, (CLUSTER_PEERING,), ("get", "list", "watch", "patch"))
)
NAMESPACED_PEERING_PERMISSIONS: tuple[Permission, ...] = tuple(
    _perms(PEERING_GROUP, (NAMESPACED_PEERING,), ("get", "list", "watch", "patch"))
)


@dataclass(frozen=True)
class Facts:
    """What the API server said at start-up."""

    username: str
    groups: tuple[str, ...]
    namespaces: tuple[str, ...]  # watched; empty: cluster-wide
    served: frozenset[str]  # resources of rollguard.dev the API server serves
    peering_served: frozenset[str]  # resources of kopf.dev it serves
    denied: Mapping[str, tuple[Permission, ...]] = field(
        default_factory=dict
    )  # namespace ("" = all)
    missing_namespaces: tuple[str, ...] = ()
    standalone: bool = False  # asked for with --standalone
    peering_object: bool | None = None  # the peering object exists (None: not looked up)
    may_create_peering: bool = False
    admission_policy: str | None = None  # the text of ADMISSION_POLICY, if it can be read


@dataclass(frozen=True)
class Assessment:
    """What to log (``info``, ``warnings``), whether to stop (``problems``), and how to run."""

    standalone: bool
    create_peering: bool = False
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    info: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def peering_resource(namespaces: Sequence[str]) -> str:
    """Kopf peers cluster-wide operators through a ClusterKopfPeering, namespaced ones through a
    KopfPeering in each namespace."""
    return NAMESPACED_PEERING if namespaces else CLUSTER_PEERING


def needed_permissions(*, namespaces: Sequence[str], peering: bool) -> tuple[Permission, ...]:
    if not peering:
        return PERMISSIONS
    return PERMISSIONS + (NAMESPACED_PEERING_PERMISSIONS if namespaces else PEERING_PERMISSIONS)


def _grouped(denied: Sequence[Permission]) -> str:
    """``list/watch rollbackpolicies.rollguard.dev, create events.events.k8s.io``: the verbs of
    each resource together, in the order the operator needs them."""
    verbs: dict[str, list[str]] = {}
    for p in denied:
        name = str(Permission("", p.group, p.resource)).strip()
        verbs.setdefault(name, []).append(p.verb)
    return ", ".join(f"{'/'.join(v)} {name}" for name, v in verbs.items())


def describe_identity(username: str, groups: Sequence[str]) -> str:
    shown = [g for g in groups if g != "system:authenticated"]
    return f"{username}" + (f" (groups: {', '.join(shown)})" if shown else "")


def assess(facts: Facts, *, peering_name: str) -> Assessment:
    who = describe_identity(facts.username, facts.groups)
    info = [f"Running as {who}"]
    problems: list[str] = []
    warnings: list[str] = []
    scope = ", ".join(facts.namespaces) or "all namespaces"
    info.append(f"Watching {scope}")
    missing_kinds = [k for k in KINDS if k not in facts.served]
    if missing_kinds:
        problems.append(
            f"the API server does not serve {', '.join(missing_kinds)} ({OWN}): "
            f"the CustomResourceDefinitions are not installed. Fix: {CRD_FIX}"
        )
    for ns in facts.missing_namespaces:
        problems.append(
            f"namespace {ns} (--namespace) does not exist. Fix: kubectl create namespace {ns}"
        )

    standalone, create = facts.standalone, False
    resource = peering_resource(facts.namespaces)
    if facts.standalone:
        info.append("Peering off (--standalone): run one replica only")
    elif resource not in facts.peering_served:
        standalone = True
        warnings.append(
            f"Peering is not installed ({resource}.{PEERING_GROUP} is not served), so this replica "
            f"runs standalone: with several replicas each would act on its own. Fix: {PEERING_FIX}; "
            "or pass --standalone to say that one replica is intended"
        )
    elif facts.peering_object is False:
        where = f"in {', '.join(facts.namespaces)}" if facts.namespaces else "cluster-wide"
        if facts.may_create_peering:
            create = True
            info.append(f"Creating the peering object {peering_name} {where}")
        else:
            kind = "KopfPeering" if facts.namespaces else "ClusterKopfPeering"
            problems.append(
                f"the {kind} {peering_name} {where} does not exist and {facts.username} may not "
                f"create it, so every replica would stay paused. Fix: kubectl create -f - <<<"
                f'\'{{"apiVersion": "kopf.dev/v1", "kind": "{kind}", '
                f'"metadata": {{"name": "{peering_name}"}}}}\''
                + (" -n NAMESPACE (for each watched namespace)" if facts.namespaces else "")
                + "; or pass --standalone"
            )
    else:
        info.append(
            f"Peering {peering_name} {'per namespace' if facts.namespaces else 'cluster-wide'}"
        )

    if facts.admission_policy is not None and facts.username not in facts.admission_policy:
        warnings.append(
            f"The admission policy {ADMISSION_POLICY} lets only the operator's ServiceAccount "
            f"create RollbackDecisions, not {facts.username}: every decision would be refused. "
            f"Fix: {RBAC_FIX}"
        )
    for ns, denied in sorted(facts.denied.items()):
        if not denied:
            continue
        where = f"in namespace {ns}" if ns else "cluster-wide"
        problems.append(f"{facts.username} may not {_grouped(denied)} {where}. Fix: {RBAC_FIX}")

    return Assessment(
        standalone=standalone,
        create_peering=create,
        problems=tuple(problems),
        warnings=tuple(warnings),
        info=tuple(info),
    )
