"""Every ``rollguard.dev/*`` label and annotation key the operator and its tools read or write.

Labels select; annotations carry values. Defined here once, so a key cannot drift between the
writer and a reader.
"""

from __future__ import annotations

from rollguard.api import GROUP

LABEL_MODEL_DEPLOYMENT = f"{GROUP}/model-deployment"
"""On a RollbackDecision: the ModelDeployment it is about."""

LABEL_POLICY = f"{GROUP}/policy"
"""On a RollbackDecision: the RollbackPolicy that made it."""

ANNOTATION_SEQUENCE = f"{GROUP}/audit-sequence"
"""On a RollbackDecision: its place in the namespace's audit chain (1, 2, …)."""

ANNOTATION_PREVIOUS = f"{GROUP}/audit-previous-hash"
"""On a RollbackDecision: the hash of the chain entry before it."""

CLEAR_ANNOTATION = f"{GROUP}/escalation-cleared-at"
"""On a ModelDeployment: when a person cleared its escalation (``rollguard clear``)."""

HUMAN_APPROVALS_ANNOTATION = f"{GROUP}/approved-template-hashes"
"""On a ModelDeployment: the pod-template hashes people approved as rollback targets."""

PAUSED_PARTITION_ANNOTATION = f"{GROUP}/paused-partition"
"""On a StatefulSet rollguard paused: the rolling-update partition it had before ("" for
none), which a rollback puts back."""
