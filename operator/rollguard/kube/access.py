"""Start-up facts from the API server: who the operator runs as, which kinds are served, what
it may do, and whether its peering object exists (``rollguard.kube.preflight`` decides from them);
and creating that peering object."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rollguard.kube.client import Cluster, api_message
from rollguard.kube.preflight import (
    ADMISSION_POLICY,
    OWN,
    PEERING_GROUP,
    Facts,
    Permission,
    needed_permissions,
    peering_resource,
)

log = logging.getLogger("rollguard")

PEERING_VERSION = "v1"


class ApiUnreachableError(RuntimeError):
    """The API server did not answer; the message says where and why."""


def _served(api: client.ApiClient, group: str, version: str) -> frozenset[str]:
    try:
        found = client.CustomObjectsApi(api).get_api_resources(group, version)
    except ApiException as err:
        if err.status == 404:
            return frozenset()
        raise
    return frozenset(r.name for r in (found.resources or []))


def _allowed(api: client.ApiClient, permission: Permission, namespace: str) -> bool:
    resource, _, subresource = permission.resource.partition("/")
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                verb=permission.verb,
                group=permission.group,
                resource=resource,
                subresource=subresource or None,
                namespace=namespace or None,
            )
        )
    )
    answer = client.AuthorizationV1Api(api).create_self_subject_access_review(review)
    return bool(answer.status and answer.status.allowed)


def _missing_namespaces(api: client.ApiClient, namespaces: Sequence[str]) -> tuple[str, ...]:
    core = client.CoreV1Api(api)
    missing = []
    for ns in namespaces:
        try:
            found = core.list_namespace(field_selector=f"metadata.name={ns}")
        except ApiException as err:
            if err.status == 403:
                return ()  # not ours to know; the watch will say
            raise
        if not found.items:
            missing.append(ns)
    return tuple(missing)


def _peering_exists(api: client.ApiClient, name: str, namespaces: Sequence[str]) -> bool:
    custom = client.CustomObjectsApi(api)
    try:
        if not namespaces:
            custom.get_cluster_custom_object(
                PEERING_GROUP, PEERING_VERSION, peering_resource(()), name
            )
        for ns in namespaces:
            custom.get_namespaced_custom_object(
                PEERING_GROUP, PEERING_VERSION, ns, peering_resource(namespaces), name
            )
    except ApiException as err:
        if err.status == 404:
            return False
        raise
    return True


def _admission_policy(api: client.ApiClient) -> str | None:
    try:
        found = client.AdmissionregistrationV1Api(api).read_validating_admission_policy(
            ADMISSION_POLICY
        )
    except ApiException:
        return None  # absent, or not readable by this identity: nothing to say
    spec = api.sanitize_for_serialization(found).get("spec") or {}  # type: ignore[no-untyped-call]
    return json.dumps(spec.get("validations") or [])


def gather(
    cluster: Cluster, *, namespaces: Sequence[str], standalone: bool, peering_name: str
) -> Facts:
    """Ask the API server, with the operator's own credentials. Raises ``ApiUnreachableError``."""
    api = cluster.api
    try:
        username, groups = cluster.whoami()
        served = _served(api, OWN, "v1alpha1")
        peering_served = frozenset() if standalone else _served(api, PEERING_GROUP, PEERING_VERSION)
        peering = not standalone and peering_resource(namespaces) in peering_served
        scopes = list(namespaces) or [""]
        denied = {
            ns: tuple(
                p
                for p in needed_permissions(namespaces=namespaces, peering=peering)
                if not _allowed(api, p, ns)
            )
            for ns in scopes
        }
        peering_object = _peering_exists(api, peering_name, namespaces) if peering else None
        may_create = peering and all(
            _allowed(api, Permission("create", PEERING_GROUP, peering_resource(namespaces)), ns)
            for ns in scopes
        )
        return Facts(
            username=username,
            groups=tuple(groups),
            namespaces=tuple(namespaces),
            served=served,
            peering_served=peering_served,
            denied=denied,
            missing_namespaces=_missing_namespaces(api, namespaces),
            standalone=standalone,
            peering_object=peering_object,
            may_create_peering=may_create,
            admission_policy=_admission_policy(api),
        )
    except ApiException as err:
        raise ApiUnreachableError(
            f"the API server answered {err.status} {err.reason} at start-up: {api_message(err)}"
        ) from err
    except OSError as err:  # urllib3's connection errors are OSErrors
        host = api.configuration.host
        raise ApiUnreachableError(f"cannot reach the API server at {host}: {err}") from err


def create_peering(cluster: Cluster, *, name: str, namespaces: Sequence[str]) -> None:
    """The ClusterKopfPeering (cluster-wide) or a KopfPeering in each namespace, where missing:
    without it Kopf keeps every replica paused."""
    custom = client.CustomObjectsApi(cluster.api)
    resource = peering_resource(namespaces)
    kind = "KopfPeering" if namespaces else "ClusterKopfPeering"
    body = {
        "apiVersion": f"{PEERING_GROUP}/{PEERING_VERSION}",
        "kind": kind,
        "metadata": {"name": name},
    }
    try:
        if not namespaces:
            custom.create_cluster_custom_object(PEERING_GROUP, PEERING_VERSION, resource, body)
        for ns in namespaces:
            try:
                custom.create_namespaced_custom_object(
                    PEERING_GROUP, PEERING_VERSION, ns, resource, body
                )
            except ApiException as err:
                if err.status != 409:
                    raise
    except ApiException as err:
        if err.status != 409:  # another replica created it first
            raise
    log.info("Created %s %s%s", kind, name, f" in {', '.join(namespaces)}" if namespaces else "")
