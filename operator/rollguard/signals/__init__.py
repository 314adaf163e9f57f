"""Model signals: PromQL queries to Prometheus, and recorded series for replay and backtests.

May import ``rollguard.api``, ``rollguard.core`` and ``rollguard.files``; never kopf or
kubernetes (import-linter checks it). Modules: ``promql`` (validate, render, batch plans; pure)
with ``promql_ast``, ``promql_convert``, ``promql_print``, ``promql_placeholders``,
``promql_keys``, ``promql_chunks``, ``promql_batch`` and ``promql_forms`` (its tree, read from
the parser's and printed; placeholders; the batching rewrite), ``prometheus`` (the HTTP
client), ``measure`` (one cycle's queries for a policy's batch, split per deployment),
``file_source`` (a file-backed source) and ``backtest``.
"""
