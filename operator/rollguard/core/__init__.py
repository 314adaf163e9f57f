"""The decision machine: pure functions from samples and policy to scores, triggers and decisions.

PURE: numpy, pydantic and ``rollguard.api`` only. No I/O, no clock (``now`` is an argument,
Unix seconds), no randomness without an explicit seed. The operator, both simulators and
``rollguard replay`` all call this same code, so they reach the same numbers.

Modules: ``tiers`` (defaults, resolver, spec hash), ``statistics`` (window statistics,
a subpackage), ``warmup``, ``severity`` (signal severities), ``scoring`` (categories, impact score, money), ``guard`` (trigger points),
``engine`` (one evaluation step over a batch), ``machine`` (what happens between
evaluations), ``samples`` (bounded samples to measurements), ``evidence``, ``options`` and
``decide`` (a decision's content), ``revisions`` (rollback targets), ``rollout`` (whether a
Deployment is rolling out), ``audit`` (the hash chain), ``replay`` (re-evaluating a recorded
decision), ``schedule`` (when a policy is evaluated), ``conditions`` and ``display`` (status
forms), and ``times`` (Unix seconds, datetimes and RFC 3339 text).
"""
