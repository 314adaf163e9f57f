"""The decision journal's hash chain. PURE.

Every RollbackDecision of a ModelDeployment gets a sequence number and
``hash = sha256(previousHash | sequence | name | canonical evidence)``, where the evidence is
the spec without the approval and the review (each set later, once, and bound to the requester
by the API server). Deleting, re-creating or altering a decision in the middle of the chain
breaks a link that ``verify`` names. Decisions exported to the audit log and then
garbage-collected are accounted for by the chain head's ``prunedThrough``/``prunedHash``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from rollguard.api.decision import RollbackDecisionSpec
from rollguard.api.modeldeployment import AuditHead

GENESIS = "sha256:" + "0" * 64


def evidence_json(spec: RollbackDecisionSpec) -> str:
    """The canonical JSON of the evidence: sorted keys, no whitespace, no approval or review."""
    wire = spec.wire()
    wire.pop("approval", None)
    wire.pop("review", None)
    return json.dumps(wire, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def link_hash(*, previous_hash: str, sequence: int, name: str, spec: RollbackDecisionSpec) -> str:
    """The audit hash of one decision."""
    digest = hashlib.sha256()
    for part in (previous_hash, str(sequence), name, evidence_json(spec)):
        digest.update(part.encode())
        digest.update(b"\n")
    return "sha256:" + digest.hexdigest()


@dataclass(frozen=True)
class ChainEntry:
    """A decision as found in the cluster: its name, evidence and recorded audit fields."""

    name: str
    spec: RollbackDecisionSpec
    sequence: int | None
    hash: str | None
    previous_hash: str | None


@dataclass(frozen=True)
class ChainReport:
    """What ``verify`` found for one ModelDeployment."""

    model_deployment: str
    checked: int
    problems: list[str]

    @property
    def intact(self) -> bool:
        return not self.problems


def verify(model_deployment: str, entries: Sequence[ChainEntry], head: AuditHead) -> ChainReport:
    """Walk the chain in sequence order and report every break: a decision without audit
    fields, a hash that does not match its evidence, a link to the wrong predecessor, a gap
    in the sequence, and a head that does not match the newest decision."""
    problems: list[str] = []
    unsealed = [e for e in entries if e.sequence is None or e.hash is None]
    problems += [
        f"{e.name}: has no audit hash (never sealed, or its status was removed)" for e in unsealed
    ]
    chain = sorted((e for e in entries if e not in unsealed), key=lambda e: e.sequence or 0)
    expected_previous = head.pruned_hash or GENESIS
    expected_sequence = head.pruned_through + 1
    for entry in chain:
        assert entry.sequence is not None and entry.hash is not None
        if entry.sequence != expected_sequence:
            problems.append(
                f"{entry.name}: sequence {entry.sequence}, expected {expected_sequence} "
                f"(decision(s) {expected_sequence}..{entry.sequence - 1} are missing)"
                if entry.sequence > expected_sequence
                else f"{entry.name}: sequence {entry.sequence} repeats or goes back"
            )
        if entry.previous_hash != expected_previous:
            problems.append(
                f"{entry.name}: previousHash {entry.previous_hash} does not link to the "
                f"preceding decision ({expected_previous})"
            )
        recomputed = link_hash(
            previous_hash=entry.previous_hash or "",
            sequence=entry.sequence,
            name=entry.name,
            spec=entry.spec,
        )
        if recomputed != entry.hash:
            problems.append(
                f"{entry.name}: evidence does not match its audit hash (altered after it was "
                "recorded)"
            )
        expected_previous = entry.hash
        expected_sequence = entry.sequence + 1
    if head.sequence and head.sequence != expected_sequence - 1:
        problems.append(
            f"chain head says sequence {head.sequence}, the newest decision found is "
            f"{expected_sequence - 1} (the newest decision(s) were deleted)"
        )
    if head.hash and chain and head.hash != expected_previous:
        problems.append(f"chain head hash {head.hash} does not match the newest decision")
    return ChainReport(model_deployment=model_deployment, checked=len(chain), problems=problems)
