"""The decision core: pure functions from samples and policy to scores, triggers and decisions.

PURE: numpy, pydantic and ``rollguard.api`` only. No I/O, no clock (``now`` is an argument,
Unix seconds), no randomness without an explicit seed. The operator, ``rollguard simulate`` and
``rollguard replay`` all call this same code, so they reach the same numbers.

Modules: ``tiers`` (defaults, resolver, spec hash), ``stats`` (window statistics),
``severity`` (signal severities), ``scoring`` (categories, impact score, money),
``engine`` (one evaluation step over a batch, dwell, hysteresis, safety), ``samples``
(bounded samples to measurements), ``evidence``, ``options`` and ``decide`` (a decision's
content), ``replay`` (re-evaluating a recorded decision). The simulator's modules build on
these. ``preflight`` is the operator's start-up check: what it needs from the API server.
"""
