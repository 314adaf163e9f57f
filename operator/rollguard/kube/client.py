"""Kubernetes API access: clients, the workload reads and patches rollguard needs, its custom
resources, and Events. Synchronous; callers use worker threads.

Errors: ``kubernetes.client.exceptions.ApiException`` passes through; callers map 409, 429
and 5xx to retries and 4xx to permanent failures (see ``is_transient``).
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from rollguard.api import GROUP, VERSION
from rollguard.core.revisions import RevisionRecord

ApiError = ApiException
"""Errors of the Kubernetes API, for layers that must not import the client."""


def api_message(err: ApiException) -> str:
    """The API server's own words for a refusal (the Status body's message), else the reason."""
    try:
        return str(json.loads(err.body or "{}").get("message") or err.reason)
    except ValueError:
        return str(err.reason)


REQUEST_TIMEOUT = (5.0, 30.0)  # seconds to connect, seconds to read
THROTTLE_RETRIES = 5  # 429 answers retried per request before the caller sees one
THROTTLE_WAIT_MAX = 10.0  # seconds: the longest Retry-After waited for in one retry
THROTTLE_WAIT_DEFAULT = 1.0  # seconds, when a 429 names no usable Retry-After

log = logging.getLogger(__name__)

PLURALS = {
    "RollbackPolicy": "rollbackpolicies",
    "ModelDeployment": "modeldeployments",
    "RollbackDecision": "rollbackdecisions",
}
COMPONENT = "rollguard"


def connect(*, kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """An API client: in-cluster config when running in a Pod, else the kubeconfig
    (``KUBECONFIG`` or ~/.kube/config). Every request it makes has a timeout."""
    api: client.ApiClient | None = None
    if kubeconfig is None and context is None:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            api = client.ApiClient()
        except config.ConfigException:
            api = None
    if api is None:
        try:
            api = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context
            )
        except (config.ConfigException, OSError) as err:
            where = kubeconfig or "KUBECONFIG / ~/.kube/config"
            raise ConnectionSetupError(f"{where}: {err}") from err
    hardened(api)
    return api


class ConnectionSetupError(ValueError):
    """No usable kubeconfig (missing, malformed, or without the named context)."""


def context_namespace(*, kubeconfig: str | None = None, context: str | None = None) -> str | None:
    """The namespace a kubeconfig context names (None: the current context), as kubectl uses
    it when none is given; None when it names none or there is no kubeconfig."""
    try:
        contexts, current = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
    except (config.ConfigException, OSError):
        return None
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
    found = ((chosen or {}).get("context") or {}).get("namespace")
    return str(found) if found else None


def hardened(api: client.ApiClient, sleep: Callable[[float], None] = time.sleep) -> None:
    """Give every request of ``api`` REQUEST_TIMEOUT unless the call sets its own (the client
    has no default, and a hung API server must not stall a cycle forever), and retry a request
    the API server throttled (HTTP 429, which it did not process) after its Retry-After, up
    to THROTTLE_RETRIES times, as client-go does: the caller sees a 429 only after that."""
    rest: Any = api.rest_client
    request = rest.request

    def hardened(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("_request_timeout") is None:
            kwargs["_request_timeout"] = REQUEST_TIMEOUT
        for _attempt in range(THROTTLE_RETRIES):
            response = request(method, url, *args, **kwargs)
            if response.status != 429:
                return response
            wait = min(
                _seconds(response.headers.get("Retry-After"), THROTTLE_WAIT_DEFAULT),
                THROTTLE_WAIT_MAX,
            )
            log.info("The API server throttled %s %s; retrying in %.0f s", method, url, wait)
            sleep(wait)
        return request(method, url, *args, **kwargs)

    rest.request = hardened


def _seconds(value: str | None, default: float) -> float:
    """A Retry-After in seconds (the API server sends whole seconds, never an HTTP date)."""
    try:
        seconds = float(value if value is not None else default)
    except (TypeError, ValueError):
        return default
    return max(seconds, 0.0) if math.isfinite(seconds) else default


def is_transient(err: ApiException) -> bool:
    """Whether retrying later may succeed: conflicts, throttling and server errors."""
    return err.status in (409, 429) or (err.status or 0) >= 500


def retry_after(err: ApiException, default: float) -> float:
    """Seconds to wait before retrying, honouring Retry-After."""
    return _seconds((err.headers or {}).get("Retry-After"), default)


@dataclass(frozen=True)
class Cluster:
    """The API operations rollguard performs, on one API client. Every call has a timeout."""

    api: client.ApiClient

    def plain(self, obj: object) -> Any:
        """A client model as plain JSON-like data, as the API server sent it."""
        return self.api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]

    # -- apps ------------------------------------------------------------------------------

    def deployment(self, *, namespace: str, name: str) -> dict[str, Any]:
        apps = client.AppsV1Api(self.api)
        obj = apps.read_namespaced_deployment(name, namespace)
        return cast(dict[str, Any], self.plain(obj))

    def replica_sets(
        self, *, namespace: str, deployment: Mapping[str, Any]
    ) -> list[RevisionRecord]:
        """The Deployment's ReplicaSets (owned by it, like `kubectl rollout history`)."""
        apps = client.AppsV1Api(self.api)
        selector = (deployment.get("spec") or {}).get("selector", {}).get("matchLabels") or {}
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        uid = deployment["metadata"]["uid"]
        found = apps.list_namespaced_replica_set(namespace, label_selector=label_selector)
        records = []
        for item in found.items:
            rs = self.plain(item)
            owners = rs.get("metadata", {}).get("ownerReferences") or []
            if not any(o.get("uid") == uid and o.get("controller") for o in owners):
                continue
            record = RevisionRecord.from_object(rs)
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
        """A JSON Patch whose first operation tests metadata.generation: if anyone changed the
        Deployment's spec since it was read, the API server refuses the patch (422) instead of
        letting it silently overwrite their edit. The generation, unlike the resourceVersion,
        does not move with the controller's status updates during a rollout."""
        body = [{"op": "test", "path": "/metadata/generation", "value": generation}]
        body.extend(dict(op) for op in operations)
        apps = client.AppsV1Api(self.api)
        obj = apps.patch_namespaced_deployment(
            name, namespace, body, _content_type="application/json-patch+json"
        )
        return cast(dict[str, Any], self.plain(obj))

    # -- other workloads (StatefulSets, Argo Rollouts), by group, version and plural ---------

    def read_object(
        self, group: str, version: str, plural: str, *, namespace: str, name: str
    ) -> dict[str, Any]:
        """An object of any namespaced API (``apps``/``statefulsets`` as well as a CRD's)."""
        return cast(
            dict[str, Any],
            self._custom().get_namespaced_custom_object(group, version, namespace, plural, name),
        )

    def list_of(
        self, group: str, version: str, plural: str, *, namespace: str, label_selector: str
    ) -> list[dict[str, Any]]:
        result = self._custom().list_namespaced_custom_object(
            group, version, namespace, plural, label_selector=label_selector
        )
        return cast(list[dict[str, Any]], cast(dict[str, Any], result).get("items", []))

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
        """A JSON Patch (of the status subresource with ``status``) whose first operation tests
        metadata.generation, refused (422) if anyone changed the spec since it was read."""
        body = [{"op": "test", "path": "/metadata/generation", "value": generation}]
        body.extend(dict(op) for op in operations)
        patch = (
            self._custom().patch_namespaced_custom_object_status
            if status
            else self._custom().patch_namespaced_custom_object
        )
        patch(
            group,
            version,
            namespace,
            plural,
            name,
            body,
            _content_type="application/json-patch+json",
        )

    # -- rollguard.dev ---------------------------------------------------------------------

    def _custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def get(self, kind: str, *, namespace: str, name: str) -> dict[str, Any]:
        return cast(
            dict[str, Any],
            self._custom().get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURALS[kind], name
            ),
        )

    def list_objects(
        self, kind: str, *, namespace: str | None = None, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        custom = self._custom()
        if namespace is None:
            result = custom.list_cluster_custom_object(
                GROUP, VERSION, PLURALS[kind], label_selector=label_selector
            )
        else:
            result = custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURALS[kind], label_selector=label_selector
            )
        return cast(list[dict[str, Any]], cast(dict[str, Any], result).get("items", []))

    def create(self, kind: str, *, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return cast(
            dict[str, Any],
            self._custom().create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURALS[kind], dict(body)
            ),
        )

    def patch(
        self, kind: str, *, namespace: str, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A merge patch of the object (for spec.approval)."""
        return cast(
            dict[str, Any],
            self._custom().patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURALS[kind], name, dict(body)
            ),
        )

    def patch_status(
        self,
        kind: str,
        *,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """A merge patch of the status subresource; with ``resource_version`` the API server
        refuses it (409) if the object changed since it was read."""
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        return cast(
            dict[str, Any],
            self._custom().patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURALS[kind], name, body
            ),
        )

    def replace_status(
        self,
        kind: str,
        *,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """Replace the whole status (a JSON Patch ``add /status``): unlike a merge patch, keys
        that are gone from ``status`` are gone from the object too. With ``resource_version``
        the API server refuses (422) if the object changed since it was read."""
        ops: list[dict[str, Any]] = []
        if resource_version is not None:
            ops.append(
                {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version}
            )
        ops.append({"op": "add", "path": "/status", "value": dict(status)})
        return cast(
            dict[str, Any],
            self._custom().patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                PLURALS[kind],
                name,
                ops,
                _content_type="application/json-patch+json",
            ),
        )

    def delete(self, kind: str, *, namespace: str, name: str) -> None:
        self._custom().delete_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURALS[kind], name
        )

    # -- identity and events ---------------------------------------------------------------

    def whoami(self) -> tuple[str, list[str]]:
        """The caller's username and groups, as the API server authenticated them."""
        review = client.AuthenticationV1Api(self.api).create_self_subject_review(
            client.V1SelfSubjectReview()
        )
        info = self.plain(review).get("status", {}).get("userInfo", {})
        return str(info.get("username", "")), list(info.get("groups") or [])

    def event(
        self,
        *,
        regarding: Mapping[str, Any],
        reason: str,
        message: str,
        type_: str = "Normal",
        action: str = "Decide",
    ) -> None:
        """An events.k8s.io/v1 Event about ``regarding`` (a full object)."""
        meta = regarding["metadata"]
        now = datetime.now(tz=UTC)
        event = client.EventsV1Event(
            metadata=client.V1ObjectMeta(
                name=f"{meta['name']}.{uuid.uuid4().hex[:12]}", namespace=meta["namespace"]
            ),
            event_time=now,
            reason=reason,
            note=message[:1024],
            type=type_,
            action=action,
            reporting_controller=f"{GROUP}/{COMPONENT}",
            reporting_instance=COMPONENT,
            regarding=client.V1ObjectReference(
                api_version=regarding.get("apiVersion"),
                kind=regarding.get("kind"),
                name=meta["name"],
                namespace=meta["namespace"],
                uid=meta.get("uid"),
                resource_version=meta.get("resourceVersion"),
            ),
        )
        client.EventsV1Api(self.api).create_namespaced_event(meta["namespace"], event)
