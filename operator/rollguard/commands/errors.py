"""What the commands raise: one line a person can act on, and for a refusal the missing
permission (``ForbiddenError``); and the cluster they speak to, as the caller."""

from __future__ import annotations

import re

from rollguard.kube.client import (
    ApiError,
    Cluster,
    ConnectionSetupError,
    api_message,
    connect,
)


class CommandError(Exception):
    """A command failed for a reason the user can act on; the message says it in one line."""


class NotFoundError(CommandError):
    """The object asked for does not exist."""


# The API server's words for an RBAC refusal: which verb on which resource, and where.
_RBAC_REFUSAL = re.compile(
    r'cannot (?P<verb>\S+) resource "(?P<resource>[^"]+)"(?: in API group "(?P<group>[^"]*)")?'
    r'(?: in the namespace "(?P<namespace>[^"]+)")?'
)


class ForbiddenError(CommandError):
    """The API server refused the caller (HTTP 403). ``verb``, ``resource`` (plural.group) and
    ``namespace`` (None: cluster-wide) name the missing permission when RBAC refused it; all
    three are None when something else did (an admission policy): the message says what."""

    def __init__(
        self, message: str, *, verb: str | None, resource: str | None, namespace: str | None
    ) -> None:
        super().__init__(message)
        self.verb, self.resource, self.namespace = verb, resource, namespace


def api_refusal(err: ApiError, what: str) -> CommandError:
    """The error a command raises for an API error while doing ``what``."""
    text = f"{what}: {api_message(err)}"
    if err.status == 404:
        return NotFoundError(text)
    if err.status != 403:
        return CommandError(text)
    found = _RBAC_REFUSAL.search(api_message(err))
    if found is None:
        return ForbiddenError(text, verb=None, resource=None, namespace=None)
    group = found["group"]
    return ForbiddenError(
        text,
        verb=found["verb"],
        resource=f"{found['resource']}.{group}" if group else found["resource"],
        namespace=found["namespace"],
    )


def cluster_for(*, kubeconfig: str | None, context: str | None) -> Cluster:
    """The cluster as the caller sees it: a kubeconfig file (None: ``KUBECONFIG`` or
    ~/.kube/config) and a context in it (None: its current one). The commands below take what
    this returns."""
    try:
        api = connect(kubeconfig=kubeconfig, context=context)
    except ConnectionSetupError as err:
        raise CommandError(f"cannot connect to the cluster: {err}") from err
    return Cluster(api)
