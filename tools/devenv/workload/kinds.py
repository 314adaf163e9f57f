"""What the workload simulator follows, read from Kubernetes API objects: ``WorkloadInfo``,
one workload's live pod template and replica count, for the kinds it serves -- apps/v1
Deployments and StatefulSets (``spec.template``, ``spec.replicas``) and Argo Rollouts
(argoproj.io/v1alpha1, the same two fields). A workload is simulated while the first container
of its live template has a SIM_PROFILE env var.

A Rollout mid-update serves from two templates: its stable ReplicaSet's and its live
``spec.template`` (the canary's). ``rollout_split`` reads from the Rollout's status which
ReplicaSet is stable (``status.stableRS``, a pod-template-hash) and what share of the
Rollout's traffic it still serves:

- no update in progress (no ``status.stableRS`` yet, or it is ``status.currentPodHash``,
  as once the canary is promoted): the live template serves everything;
- the controller has not seen the latest spec yet (``status.observedGeneration`` behind
  ``metadata.generation``, as just after a template change): the stable one serves
  everything, as the new template has no pods yet;
- aborted (``status.abort``): the stable one serves everything;
- blue-green: whichever the active Service selects (``status.blueGreen.activeSelector``);
- canary with traffic routing: the canary serves ``status.canary.weights.canary.weight``
  out of the canary and stable weights;
- canary without: the canary serves the share of the replicas it was given,
  ``status.updatedReplicas / spec.replicas`` (half, paused at a 50% step).

``extract_rollout`` finds the stable template among the ReplicaSets the caller read (those
owned by the Rollout and labelled ``rollouts-pod-template-hash`` with the stable hash). When
it is not there, or its first container has no SIM_PROFILE, the live template serves
everything. A Rollout that names its template with ``spec.workloadRef`` has no
``spec.template``, so it is not simulated (the Deployment it refers to is, on its own).

PURE. Called by ``devenv.workload.fleet``, ``devenv.workload.server`` and the unit tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from devenv.workload.profile import PROFILE_ENV

DEPLOYMENT = "Deployment"
STATEFUL_SET = "StatefulSet"
ROLLOUT = "Rollout"
KINDS: tuple[str, ...] = (DEPLOYMENT, STATEFUL_SET, ROLLOUT)
# Group, version and plural of Argo Rollouts, as the custom-objects API takes them.
ROLLOUT_RESOURCE: tuple[str, str, str] = ("argoproj.io", "v1alpha1", "rollouts")
# The label that tells a Rollout's ReplicaSets (and Pods) apart, by template.
POD_TEMPLATE_HASH_LABEL = "rollouts-pod-template-hash"

# A container's env: name -> literal value (None where it comes from valueFrom).
Env = dict[str, str | None]


@dataclass(frozen=True)
class WorkloadInfo:
    """What the simulator needs from one workload object.

    ``env`` is None when the live template's first container has no SIM_PROFILE, i.e. not
    simulated. A Rollout mid-update also has ``stable_env``, its stable template's, and
    ``stable_share``, the share of its replicas (0 to 1) that still run it.
    """

    namespace: str
    name: str
    env: Env | None
    replicas: int
    kind: str = DEPLOYMENT
    stable_env: Env | None = None
    stable_share: float = 0.0

    def shares(self) -> tuple[tuple[Env, float], ...]:
        """The envs its replicas run, each with its share of the replicas (shares > 0 that
        sum to 1); empty when it is not simulated."""
        if self.env is None:
            return ()
        share = min(max(self.stable_share, 0.0), 1.0)
        if self.stable_env is None or share == 0.0:
            return ((self.env, 1.0),)
        if share == 1.0:
            return ((self.stable_env, 1.0),)
        return ((self.stable_env, share), (self.env, 1.0 - share))


def get_path(obj: Any, *path: str | int) -> Any:
    """``obj[path[0]][path[1]]...`` over dicts (str steps) and lists (int steps); None where
    a step is missing or the wrong kind."""
    cur = obj
    for step in path:
        if isinstance(step, int):
            if not isinstance(cur, list) or len(cur) <= step:
                return None
            cur = cur[step]
        else:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(step)
    return cur


def template_env(template: Any) -> Env | None:
    """The env of a pod template's first container; None when it has no SIM_PROFILE."""
    env_list = get_path(template, "spec", "containers", 0, "env")
    env: Env = {}
    if isinstance(env_list, list):
        for item in env_list:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                value = item.get("value")
                env[item["name"]] = value if isinstance(value, str) else None
    return env if PROFILE_ENV in env else None


def extract_workload(obj: Mapping[str, Any], kind: str) -> WorkloadInfo | None:
    """Read a workload whose template and replicas are at ``spec.template`` and
    ``spec.replicas``, in API (camelCase dict) form; None if it lacks namespace/name."""
    namespace = get_path(obj, "metadata", "namespace")
    name = get_path(obj, "metadata", "name")
    if not isinstance(namespace, str) or not isinstance(name, str):
        return None
    replicas_raw = get_path(obj, "spec", "replicas")
    # spec.replicas defaults to 1 when unset; "min 1" keeps scaled-to-zero fleets visible.
    replicas = replicas_raw if _is_number(replicas_raw) else 1
    replicas = max(1, int(replicas))
    return WorkloadInfo(
        namespace, name, template_env(get_path(obj, "spec", "template")), replicas, kind
    )


def extract_deployment(obj: Mapping[str, Any]) -> WorkloadInfo | None:
    """Read an apps/v1 Deployment (see ``extract_workload``)."""
    return extract_workload(obj, DEPLOYMENT)


def extract_stateful_set(obj: Mapping[str, Any]) -> WorkloadInfo | None:
    """Read an apps/v1 StatefulSet (see ``extract_workload``)."""
    return extract_workload(obj, STATEFUL_SET)


# -- Argo Rollouts ---------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _clamp(share: float) -> float:
    return min(max(share, 0.0), 1.0)


def _behind(rollout: Mapping[str, Any]) -> bool:
    """Whether the controller has yet to see the Rollout's latest spec (Argo writes the
    generation it saw as a string)."""
    observed = get_path(rollout, "status", "observedGeneration")
    generation = get_path(rollout, "metadata", "generation")
    return observed is not None and generation is not None and str(observed) != str(generation)


def _canary_share(rollout: Mapping[str, Any]) -> float:
    """The share of the traffic the live template serves while an update is in progress."""
    status = rollout.get("status")
    if get_path(rollout, "spec", "strategy", "blueGreen") is not None:
        active = get_path(status, "blueGreen", "activeSelector")
        return 1.0 if active == get_path(status, "currentPodHash") else 0.0
    canary = get_path(status, "canary", "weights", "canary", "weight")
    stable = get_path(status, "canary", "weights", "stable", "weight")
    if _is_number(canary) and _is_number(stable) and canary + stable > 0:
        return _clamp(canary / (canary + stable))
    updated = get_path(status, "updatedReplicas")
    replicas = get_path(rollout, "spec", "replicas")
    replicas = max(1, int(replicas)) if _is_number(replicas) else 1
    return _clamp(updated / replicas) if _is_number(updated) else 0.0


def rollout_split(rollout: Mapping[str, Any]) -> tuple[str, float] | None:
    """The stable ReplicaSet's pod-template-hash and the share of the Rollout's traffic it
    serves (above 0, at most 1), or None when the live template serves all of it; the rules
    are in the module docstring."""
    stable = get_path(rollout, "status", "stableRS")
    if not isinstance(stable, str) or not stable:
        return None
    if _behind(rollout) or get_path(rollout, "status", "abort") is True:
        return stable, 1.0
    if get_path(rollout, "status", "currentPodHash") == stable:
        return None
    share = 1.0 - _canary_share(rollout)
    return (stable, share) if share > 0.0 else None


def _stable_env(
    info: WorkloadInfo, stable_hash: str, replicasets: Iterable[Mapping[str, Any]]
) -> Env | None:
    for rs in replicasets:
        owners = get_path(rs, "metadata", "ownerReferences")
        owned = isinstance(owners, list) and any(
            get_path(ref, "kind") == ROLLOUT and get_path(ref, "name") == info.name
            for ref in owners
        )
        if (
            owned
            and get_path(rs, "metadata", "namespace") in (None, info.namespace)
            and get_path(rs, "metadata", "labels", POD_TEMPLATE_HASH_LABEL) == stable_hash
        ):
            return template_env(get_path(rs, "spec", "template"))
    return None


def extract_rollout(
    obj: Mapping[str, Any], replicasets: Iterable[Mapping[str, Any]] = ()
) -> WorkloadInfo | None:
    """Read an Argo Rollout, with the stable template's share of its traffic when an update is
    in progress; ``replicasets`` need hold only the stable ReplicaSet (``rollout_split``
    names its hash), and may hold others, of any owner (module docstring)."""
    info = extract_workload(obj, ROLLOUT)
    split = rollout_split(obj)
    if info is None or info.env is None or split is None:
        return info
    stable_hash, share = split
    stable_env = _stable_env(info, stable_hash, replicasets)
    if stable_env is None or stable_env == info.env:
        return info
    return replace(info, stable_env=stable_env, stable_share=share)
