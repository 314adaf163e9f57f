"""An in-memory Kubernetes API server for driving the operator's control code in unit tests:
the ``rollguard.kube.client.Cluster`` operations over one namespace's Deployments, their
ReplicaSets and rollguard's custom objects, answering like the API server (404, 409, 422 on a
failed JSON Patch test or resourceVersion precondition, 400 for a body that is not JSON) and
playing the Deployment controller: a changed pod template gets the next revision number (a
template it has a ReplicaSet for reuses it, renumbered, as after ``kubectl rollout undo``)
and rolls out at once unless the Deployment is paused.

Knobs for what the operator must survive (each documented where it is defined): another
client's edit of the Deployment (``edit_deployment``, ``revision_template``), the controller
pruning an old revision (``prune_revision``), a rollout that never completes
(``stall_rollouts``), and a race on the operator's next Deployment PATCH: refused with a 409
(``conflict_next_deployment_patch``) or preceded by another writer's edit, which makes
the operator's generation test fail with the API server's own 422
(``edit_before_next_deployment_patch``).

Not modelled: CRD schema validation and pruning, CEL rules, admission, RBAC, watches.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rollguard.api import API_VERSION
from rollguard.core.revisions import (
    REVISION_ANNOTATION,
    TEMPLATE_HASH_LABEL,
    RevisionRecord,
)
from rollguard.kube.client import ApiError

NAMESPACE = "ml"
NAME = "model"  # the ModelDeployment and its Deployment
POLICY = "policy"
REPLICAS = 3


WORKLOAD_KINDS = {
    "statefulsets": "StatefulSet",
    "controllerrevisions": "ControllerRevision",
    "rollouts": "Rollout",
    "replicasets": "ReplicaSet",
}


def _error(status: int, reason: str, message: str) -> ApiError:
    """An error as the API client raises it, with the Status body the API server sends."""
    body = json.dumps({"kind": "Status", "status": "Failure", "message": message, "code": status})
    return ApiError(status=status, reason=reason, body=body)


def _wire(value: Any) -> Any:
    """``value`` as the API server stores it: through JSON, which refuses NaN and Infinity
    (the API server answers 400) and anything that is not JSON at all."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise _error(400, "Bad Request", f"the request body is not valid JSON: {err}") from err


def _merge(target: Any, patch: Any) -> Any:
    """An RFC 7386 JSON merge patch: objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def _json_patch(doc: dict[str, Any], operations: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """An RFC 6902 JSON Patch (test, add, replace, remove) on object paths; 422 when a test
    fails or a path is missing, as the API server answers."""
    out = copy.deepcopy(doc)
    for op in operations:
        *parents, last = [
            p.replace("~1", "/").replace("~0", "~") for p in op["path"][1:].split("/")
        ]
        node: Any = out
        for part in parents:
            if not isinstance(node, dict) or part not in node:
                raise _error(422, "Unprocessable Entity", f"path {op['path']} does not exist")
            node = node[part]
        if not isinstance(node, dict):
            raise _error(422, "Unprocessable Entity", f"path {op['path']} is not in an object")
        kind = op["op"]
        if kind == "test":
            if node.get(last) != op["value"]:
                raise _error(
                    422,
                    "Unprocessable Entity",
                    f"the server rejected our request due to an error in our request: test "
                    f"failed at {op['path']}: {node.get(last)!r} != {op['value']!r}",
                )
        elif kind == "add":
            node[last] = copy.deepcopy(op["value"])
        elif kind == "replace":
            if last not in node:
                raise _error(422, "Unprocessable Entity", f"path {op['path']} does not exist")
            node[last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            if last not in node:
                raise _error(422, "Unprocessable Entity", f"path {op['path']} does not exist")
            del node[last]
        else:
            raise _error(422, "Unprocessable Entity", f"unsupported JSON Patch op {kind}")
    return out


def _selected(obj: Mapping[str, Any], label_selector: str) -> bool:
    labels = obj["metadata"].get("labels") or {}
    for term in filter(None, (t.strip() for t in label_selector.split(","))):
        key, sep, value = term.partition("=")
        if not sep:
            raise _error(400, "Bad Request", f"unsupported label selector {label_selector!r}")
        if labels.get(key.strip()) != value.strip().lstrip("="):
            return False
    return True


def _rfc3339(seconds: float) -> str:
    """A metadata timestamp as the API server writes it: whole seconds, UTC."""
    moment = datetime.fromtimestamp(math.floor(seconds), tz=UTC)
    return moment.isoformat().replace("+00:00", "Z")


def _template(revision: int) -> dict[str, Any]:
    """The pod template of Deployment revision ``revision`` (as written in the Deployment)."""
    return {
        "metadata": {"labels": {"app": NAME}},
        "spec": {"containers": [{"name": NAME, "image": f"registry.local/{NAME}:v{revision}"}]},
    }


def _template_hash(template: Mapping[str, Any]) -> str:
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


def _without_hash(template: Mapping[str, Any]) -> dict[str, Any]:
    plain: dict[str, Any] = copy.deepcopy(dict(template))
    labels = (plain.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(TEMPLATE_HASH_LABEL, None)
    return plain


@dataclass(frozen=True)
class DeploymentPatch:
    """One patch the Deployment accepted."""

    time: float
    operations: list[dict[str, Any]]


class FakeCluster:
    """The ``rollguard.kube.client.Cluster`` operations, on objects held in memory.

    ``now`` is the simulated clock (creationTimestamp of created objects, Event times); the
    harness moves it. Every read returns a copy and every write stores a JSON copy, so the
    operator can neither see later changes through an old object nor store what the API
    server would refuse."""

    def __init__(self, *, now: float) -> None:
        self.now = now
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (kind, ns, name)
        self.deployments: dict[tuple[str, str], dict[str, Any]] = {}
        self.replica_set_objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.deployment_patches: list[DeploymentPatch] = []  # the operator's, as accepted
        self._version = 0
        self._stalled: set[tuple[str, str]] = set()
        # (namespace, name) -> (a 409 instead, another writer's edit first) for the next
        # patch_deployment of that Deployment
        self._next_patch: dict[tuple[str, str], tuple[bool, list[dict[str, Any]]]] = {}
        self._refused: dict[str, str] = {}  # kind -> the 403 message its creation gets
        self.forbidden: set[tuple[str, str, str]] = set()  # (kind, ns, name) reads get a 403

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    def _stored(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        try:
            return self.objects[(kind, namespace, name)]
        except KeyError:
            raise _error(404, "Not Found", f'{kind} "{name}" not found') from None

    # -- setup (not part of the Cluster interface) ------------------------------------------

    def add_deployment(
        self,
        *,
        namespace: str,
        name: str,
        revisions: int,
        rolling: bool,
        created: float | None = None,
    ) -> None:
        """A Deployment whose history holds ``revisions`` ReplicaSets (1..revisions), at the
        newest; ``rolling``: its rollout to it has not finished yet; ``created``: the newest
        ReplicaSet's creationTimestamp (none by default, none on the older ones)."""
        uid = str(uuid.uuid4())
        deployment: dict[str, Any] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": uid,
                "generation": revisions,
                "resourceVersion": self._next_version(),
                "annotations": {REVISION_ANNOTATION: str(revisions)},
                "labels": {"app": name},
            },
            "spec": {
                "replicas": REPLICAS,
                "selector": {"matchLabels": {"app": name}},
                "template": _template(revisions),
            },
            "status": {},
        }
        for revision in range(1, revisions + 1):
            born = created if revision == revisions else None
            self._add_replica_set(deployment, _template(revision), revision, created=born)
        self._roll_out(deployment)
        if rolling:
            # Mid-rollout: one new Pod up, surge Pod counted, old ones still serving.
            deployment["status"].update(
                {"replicas": REPLICAS + 1, "updatedReplicas": 1, "availableReplicas": REPLICAS}
            )
        self.deployments[(namespace, name)] = deployment

    def add_object(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Store a custom object as a user would apply it (status included, for setup)."""
        obj = _wire(dict(body))
        meta = obj["metadata"]
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp", _rfc3339(self.now))
        meta["resourceVersion"] = self._next_version()
        self.objects[(kind, meta["namespace"], meta["name"])] = obj
        return copy.deepcopy(obj)

    def _add_replica_set(
        self,
        deployment: Mapping[str, Any],
        template: Mapping[str, Any],
        revision: int,
        *,
        created: float | None,
    ) -> None:
        meta = deployment["metadata"]
        template_hash = _template_hash(template)
        rs_template = copy.deepcopy(dict(template))
        rs_template["metadata"]["labels"][TEMPLATE_HASH_LABEL] = template_hash
        name = f"{meta['name']}-{template_hash}"
        self.replica_set_objects[(meta["namespace"], name)] = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "uid": str(uuid.uuid4()),
                "labels": {**rs_template["metadata"]["labels"]},
                "annotations": {REVISION_ANNOTATION: str(revision)},
                **({} if created is None else {"creationTimestamp": _rfc3339(created)}),
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {"replicas": 0, "template": rs_template},
        }

    def _owned(self, deployment: Mapping[str, Any]) -> list[dict[str, Any]]:
        meta = deployment["metadata"]
        return [
            rs
            for (namespace, _), rs in sorted(self.replica_set_objects.items())
            if namespace == meta["namespace"]
            and any(
                o.get("uid") == meta["uid"] and o.get("controller")
                for o in rs["metadata"]["ownerReferences"]
            )
        ]

    def _roll_out(self, deployment: dict[str, Any]) -> None:
        """What the Deployment controller writes once the rollout is complete."""
        replicas = deployment["spec"]["replicas"]
        deployment["status"] = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        }

    def _reconcile(self, deployment: dict[str, Any], *, template_changed: bool) -> None:
        """The Deployment controller after a spec change: a template it has a ReplicaSet for
        gets the next revision number (how `kubectl rollout undo` renumbers), a new one a new
        ReplicaSet; then the rollout completes at once unless the Deployment is paused."""
        meta = deployment["metadata"]
        if template_changed and not deployment["spec"].get("paused"):
            owned = self._owned(deployment)
            newest = max(int(rs["metadata"]["annotations"][REVISION_ANNOTATION]) for rs in owned)
            wanted = _without_hash(deployment["spec"]["template"])
            same = next(
                (rs for rs in owned if _without_hash(rs["spec"]["template"]) == wanted), None
            )
            if same is not None:
                same["metadata"]["annotations"][REVISION_ANNOTATION] = str(newest + 1)
            else:
                self._add_replica_set(deployment, wanted, newest + 1, created=self.now)
            meta["annotations"][REVISION_ANNOTATION] = str(newest + 1)
        if deployment["spec"].get("paused"):
            deployment["status"]["observedGeneration"] = meta["generation"]
        elif template_changed and (meta["namespace"], meta["name"]) in self._stalled:
            # Started, never finished: one new Pod that does not become available.
            deployment["status"].update(
                {
                    "observedGeneration": meta["generation"],
                    "replicas": REPLICAS + 1,
                    "updatedReplicas": 1,
                    "availableReplicas": REPLICAS,
                }
            )
        elif template_changed:
            self._roll_out(deployment)

    # -- apps ----------------------------------------------------------------------------------

    def deployment(self, *, namespace: str, name: str) -> dict[str, Any]:
        try:
            return copy.deepcopy(self.deployments[(namespace, name)])
        except KeyError:
            raise _error(404, "Not Found", f'deployments.apps "{name}" not found') from None

    def replica_sets(
        self, *, namespace: str, deployment: Mapping[str, Any]
    ) -> list[RevisionRecord]:
        selector = (deployment.get("spec") or {}).get("selector", {}).get("matchLabels") or {}
        uid = deployment["metadata"]["uid"]
        records = []
        for (ns, _), rs in sorted(self.replica_set_objects.items()):
            labels = rs["metadata"].get("labels") or {}
            if ns != namespace or any(labels.get(k) != v for k, v in selector.items()):
                continue
            owners = rs["metadata"].get("ownerReferences") or []
            if not any(o.get("uid") == uid and o.get("controller") for o in owners):
                continue
            record = RevisionRecord.from_object(copy.deepcopy(rs))
            if record is not None:
                records.append(record)
        return records

    def patch_deployment(
        self,
        *,
        namespace: str,
        name: str,
        generation: int,
        operations: Sequence[Mapping[str, Any]],
    ) -> dict[str, Any]:
        """The operator's JSON Patch (``Cluster.patch_deployment``): the generation test, then
        ``operations``; recorded in ``deployment_patches`` once accepted."""
        conflict, edit = self._next_patch.pop((namespace, name), (False, []))
        if conflict:
            raise _error(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on deployments.apps "{name}": the object has '
                "been modified; please apply your changes to the latest version and try again",
            )
        if edit:
            self.edit_deployment(namespace=namespace, name=name, operations=edit)
        body = [{"op": "test", "path": "/metadata/generation", "value": generation}]
        body.extend(_wire([dict(op) for op in operations]))
        patched = self._apply(namespace, name, body)
        self.deployment_patches.append(DeploymentPatch(self.now, body[1:]))
        return patched

    def _apply(
        self, namespace: str, name: str, body: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        live = self.deployments.get((namespace, name))
        if live is None:
            raise _error(404, "Not Found", f'deployments.apps "{name}" not found')
        patched = _json_patch(live, body)
        template_changed = patched["spec"]["template"] != live["spec"]["template"]
        if patched["spec"] != live["spec"]:
            patched["metadata"]["generation"] = live["metadata"]["generation"] + 1
        patched["metadata"]["resourceVersion"] = self._next_version()
        self._reconcile(patched, template_changed=template_changed)
        self.deployments[(namespace, name)] = patched
        return copy.deepcopy(patched)

    # -- knobs: what other clients and the controller do (not part of the Cluster interface) --

    def edit_deployment(
        self, *, namespace: str, name: str, operations: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Someone other than the operator (kubectl, a GitOps tool) applies a JSON Patch to the
        Deployment: the controller reacts as to any edit. Not in ``deployment_patches``, which
        lists the operator's own patches."""
        return self._apply(namespace, name, _wire([dict(op) for op in operations]))

    def revision_template(self, *, namespace: str, name: str, revision: int) -> dict[str, Any]:
        """The pod template of the Deployment's revision ``revision`` as ``kubectl rollout
        undo --to-revision`` writes it back (without the pod-template-hash label)."""
        deployment = self.deployments[(namespace, name)]
        for rs in self._owned(deployment):
            if rs["metadata"]["annotations"][REVISION_ANNOTATION] == str(revision):
                return _without_hash(rs["spec"]["template"])
        raise KeyError(f"Deployment {namespace}/{name} has no revision {revision}")

    def prune_revision(self, *, namespace: str, name: str, revision: int) -> None:
        """The Deployment controller deletes the ReplicaSet of revision ``revision``, as it
        does beyond ``revisionHistoryLimit``."""
        deployment = self.deployments[(namespace, name)]
        for rs in self._owned(deployment):
            if rs["metadata"]["annotations"][REVISION_ANNOTATION] == str(revision):
                del self.replica_set_objects[(namespace, rs["metadata"]["name"])]
                return
        raise KeyError(f"Deployment {namespace}/{name} has no revision {revision}")

    def stall_rollouts(self, *, namespace: str, name: str) -> None:
        """From now on the Deployment's rollouts start and never complete (its new Pods never
        become available, as with an image that cannot be pulled)."""
        self._stalled.add((namespace, name))

    def conflict_next_deployment_patch(self, *, namespace: str, name: str) -> None:
        """The next ``patch_deployment`` of the Deployment is refused with the API server's 409
        ("the object has been modified") and changes nothing; later ones are answered
        normally."""
        self._next_patch[(namespace, name)] = (True, [])

    def edit_before_next_deployment_patch(
        self, *, namespace: str, name: str, operations: Sequence[Mapping[str, Any]]
    ) -> None:
        """Another writer's edit (``edit_deployment(operations)``) lands between the operator's
        read of the Deployment and its next ``patch_deployment``: if the edit changes the spec,
        the patch's generation test fails and the API server answers 422."""
        self._next_patch[(namespace, name)] = (False, [dict(op) for op in operations])

    def refuse_creates(self, kind: str, message: str | None) -> None:
        """From now on, creating a ``kind`` is refused with a 403 and ``message`` (as RBAC or an
        admission policy refuses it); None accepts creations again."""
        if message is None:
            self._refused.pop(kind, None)
        else:
            self._refused[kind] = message

    # -- other workloads: held in ``objects`` by kind ----------------------------------------

    def read_object(
        self, group: str, version: str, plural: str, *, namespace: str, name: str
    ) -> dict[str, Any]:
        if (WORKLOAD_KINDS[plural], namespace, name) in self.forbidden:
            raise _error(403, "Forbidden", f"{plural}.{group} {name!r} is forbidden")
        return copy.deepcopy(self._stored(WORKLOAD_KINDS[plural], namespace, name))

    def list_of(
        self, group: str, version: str, plural: str, *, namespace: str, label_selector: str
    ) -> list[dict[str, Any]]:
        return self.list_objects(
            WORKLOAD_KINDS[plural], namespace=namespace, label_selector=label_selector
        )

    def json_patch(
        self,
        group: str,
        version: str,
        plural: str,
        *,
        namespace: str,
        name: str,
        generation: int,
        operations: Sequence[Mapping[str, Any]],
        status: bool = False,
    ) -> None:
        kind = WORKLOAD_KINDS[plural]
        stored = self._stored(kind, namespace, name)
        test = {"op": "test", "path": "/metadata/generation", "value": generation}
        self.objects[(kind, namespace, name)] = _json_patch(stored, [test, *operations])

    # -- rollguard.dev ---------------------------------------------------------------------

    def get(self, kind: str, *, namespace: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self._stored(kind, namespace, name))

    def list_objects(
        self, kind: str, *, namespace: str | None = None, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(obj)
            for (k, ns, _), obj in sorted(self.objects.items())
            if k == kind and namespace in (None, ns) and _selected(obj, label_selector)
        ]

    def create(self, kind: str, *, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if kind in self._refused:
            raise _error(403, "Forbidden", self._refused[kind])
        obj = _wire(dict(body))
        meta = obj["metadata"]
        if meta.get("namespace", namespace) != namespace:
            raise _error(400, "Bad Request", "the namespace of the object does not match")
        if (kind, namespace, meta["name"]) in self.objects:
            raise _error(409, "AlreadyExists", f'{kind} "{meta["name"]}" already exists')
        obj.pop("status", None)  # the status subresource: a create does not set it
        meta.update(
            namespace=namespace,
            uid=str(uuid.uuid4()),
            generation=1,
            resourceVersion=self._next_version(),
            creationTimestamp=_rfc3339(self.now),
        )
        self.objects[(kind, namespace, meta["name"])] = obj
        return copy.deepcopy(obj)

    def patch(
        self, kind: str, *, namespace: str, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        stored = self._stored(kind, namespace, name)
        patch = _wire(dict(body))
        patch.pop("status", None)  # the main resource: status changes are ignored
        merged = _merge(stored, patch)
        if merged.get("spec") != stored.get("spec"):
            merged["metadata"]["generation"] = stored["metadata"].get("generation", 1) + 1
        merged["metadata"]["resourceVersion"] = self._next_version()
        self.objects[(kind, namespace, name)] = merged
        return copy.deepcopy(merged)

    def patch_status(
        self,
        kind: str,
        *,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        stored = self._stored(kind, namespace, name)
        if resource_version is not None and resource_version != stored["metadata"].get(
            "resourceVersion"
        ):
            raise _error(409, "Conflict", f'the object "{name}" has been modified')
        merged = dict(stored)
        merged["status"] = _merge(stored.get("status") or {}, _wire(dict(status)))
        merged["metadata"] = {**stored["metadata"], "resourceVersion": self._next_version()}
        self.objects[(kind, namespace, name)] = merged
        return copy.deepcopy(merged)

    def replace_status(
        self,
        kind: str,
        *,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        stored = self._stored(kind, namespace, name)
        if resource_version is not None and resource_version != stored["metadata"].get(
            "resourceVersion"
        ):
            raise _error(
                422,
                "Unprocessable Entity",
                f"test failed at /metadata/resourceVersion: "
                f"{stored['metadata'].get('resourceVersion')!r} != {resource_version!r}",
            )
        replaced = dict(stored)
        replaced["status"] = _wire(dict(status))
        replaced["metadata"] = {**stored["metadata"], "resourceVersion": self._next_version()}
        self.objects[(kind, namespace, name)] = replaced
        return copy.deepcopy(replaced)

    def delete(self, kind: str, *, namespace: str, name: str) -> None:
        self._stored(kind, namespace, name)
        del self.objects[(kind, namespace, name)]

    # -- identity and events -------------------------------------------------------------

    def whoami(self) -> tuple[str, list[str]]:
        return "system:serviceaccount:rollguard:rollguard", ["system:serviceaccounts"]

    def event(
        self,
        *,
        regarding: Mapping[str, Any],
        reason: str,
        message: str,
        type_: str = "Normal",
        action: str = "Decide",
    ) -> None:
        meta = regarding["metadata"]
        self.events.append(
            {
                "time": self.now,
                "kind": regarding.get("kind"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "reason": reason,
                "message": message[:1024],
                "type": type_,
                "action": action,
            }
        )


def build_cluster(
    *,
    now: float,
    revisions: int,
    rollout_in_progress: bool,
    policy_name: str = POLICY,
    created: float | None = None,
) -> FakeCluster:
    """The starting state: the Deployment at revision ``revisions`` (its ReplicaSet created at
    ``created``, when given) and the ModelDeployment approving every older revision through
    Git (spec.approvedRevisions)."""
    if revisions < 1:
        raise ValueError(f"revisions must be at least 1, got {revisions}")
    cluster = FakeCluster(now=now)
    cluster.add_deployment(
        namespace=NAMESPACE,
        name=NAME,
        revisions=revisions,
        rolling=rollout_in_progress,
        created=created,
    )
    spec: dict[str, Any] = {
        "deploymentRef": {"name": NAME},
        "policyRef": {"name": policy_name},
    }
    if revisions > 1:
        spec["approvedRevisions"] = [{"revision": r} for r in range(1, revisions)]
    cluster.add_object(
        "ModelDeployment",
        {
            "apiVersion": API_VERSION,
            "kind": "ModelDeployment",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "spec": spec,
        },
    )
    return cluster
