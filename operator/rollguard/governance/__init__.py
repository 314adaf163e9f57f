"""Governance documents: the rollback playbook, the model inventory, the decision journal and
its calibration report (``calibration``, with ``margins`` per signal and ``intervals``).

Builds on ``rollguard.core`` and ``rollguard.files``; independent of ``simulation`` and of
everything that talks to a cluster or Prometheus (import-linter checks it).
"""
