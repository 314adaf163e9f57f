"""``rollguard dashboard``: a local web view of ModelDeployments and RollbackDecisions, with
Approve and Reject, served on the user's machine with the user's own kubeconfig (like
``kubectl argo rollouts dashboard``).

Sits between ``rollguard.cli`` (which starts it) and ``rollguard.commands`` (through which it
reads and writes, as the user). Standard library HTTP, server-rendered HTML with inline CSS
and SVG: nothing is loaded from anywhere else. Modules: ``server`` (routes and answers),
``pages`` and ``decision_page`` (HTML), ``charts`` (SVG), ``csrf`` (cross-site checks); all
but ``server`` are pure.
"""
