"""Simulation: what a policy would do, before it ships and on recorded data.

Builds on ``rollguard.core`` and never re-implements one of its rules. ``montecarlo`` is
``rollguard simulate`` over scenarios (``scenarios``, ``generate``, ``seed_series``,
``seed_decisions``, ``scenario_run``, ``metrics``, whose intervals are ``core.bootstrap``'s);
``virtual`` is the operator for one ModelDeployment in memory and ``recorded`` runs it on
recorded series; ``report`` and ``plot`` present the results. Independent of ``governance`` and of everything that talks to a
cluster or Prometheus (import-linter checks it).
"""
