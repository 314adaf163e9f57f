"""The decision hash chain: intact chains verify, and every kind of tampering is named."""

from __future__ import annotations

from recorded_decision import recorded

from rollguard.api.decision import Approval
from rollguard.api.modeldeployment import AuditHead
from rollguard.core.audit import GENESIS, ChainEntry, link_hash, verify


def _chain(n: int) -> list[ChainEntry]:
    entries, previous = [], GENESIS
    spec = recorded()
    for sequence in range(1, n + 1):
        name = f"fraud-{sequence}"
        digest = link_hash(previous_hash=previous, sequence=sequence, name=name, spec=spec)
        entries.append(ChainEntry(name, spec, sequence, digest, previous))
        previous = digest
    return entries


def _head(entries: list[ChainEntry]) -> AuditHead:
    return AuditHead(sequence=entries[-1].sequence or 0, hash=entries[-1].hash or "")


def test_an_intact_chain_verifies() -> None:
    entries = _chain(4)
    report = verify("ml/fraud", entries, _head(entries))
    assert report.intact, report.problems
    assert report.checked == 4


def test_the_approval_is_not_part_of_the_hashed_evidence() -> None:
    spec = recorded()
    approved = spec.model_copy(
        update={"approval": Approval(decision="Approve", by="alice", reason="ok")}
    )
    assert link_hash(previous_hash=GENESIS, sequence=1, name="x", spec=spec) == link_hash(
        previous_hash=GENESIS, sequence=1, name="x", spec=approved
    )


def test_a_deleted_decision_in_the_middle_is_named_as_a_gap() -> None:
    entries = _chain(4)
    del entries[1]
    problems = verify("ml/fraud", entries, _head(entries)).problems
    assert any("fraud-3: sequence 3, expected 2" in p for p in problems)
    assert any("fraud-3: previousHash" in p for p in problems)


def test_altered_evidence_is_found() -> None:
    entries = _chain(3)
    spec = entries[1].spec
    altered = spec.model_copy(update={"impact": spec.impact.model_copy(update={"score": 0.1})})
    entries[1] = ChainEntry(
        entries[1].name, altered, entries[1].sequence, entries[1].hash, entries[1].previous_hash
    )
    problems = verify("ml/fraud", entries, _head(entries)).problems
    assert problems == [
        "fraud-2: evidence does not match its audit hash (altered after it was recorded)"
    ]


def test_a_deleted_newest_decision_is_found_through_the_head() -> None:
    entries = _chain(3)
    head = _head(entries)
    problems = verify("ml/fraud", entries[:2], head).problems
    assert any("newest decision(s) were deleted" in p for p in problems)


def test_pruned_decisions_after_export_are_not_a_break() -> None:
    entries = _chain(5)
    pruned = entries[1]
    head = AuditHead(
        sequence=5, hash=entries[-1].hash or "", pruned_through=2, pruned_hash=pruned.hash or ""
    )
    assert verify("ml/fraud", entries[2:], head).intact


def test_an_unsealed_decision_is_reported() -> None:
    entries = _chain(2)
    entries.append(ChainEntry("fraud-x", entries[0].spec, None, None, None))
    problems = verify("ml/fraud", entries, _head(entries[:2])).problems
    assert problems == ["fraud-x: has no audit hash (never sealed, or its status was removed)"]
