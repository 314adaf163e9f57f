"""Measuring: signal queries to Prometheus, and recorded series for replay and backtests.

May import ``rollguard.api`` and ``rollguard.domain``; never kopf or kubernetes (import-linter
checks it). Modules: ``promql`` (validate, render, batch plans; pure), ``promql_ast`` and
``promql_batch`` (its tree, printer and rewrite), ``prometheus`` (the HTTP client),
``measure`` (one cycle's queries for a policy's batch, split per deployment) and ``recorded``
(a file-backed source).
"""
