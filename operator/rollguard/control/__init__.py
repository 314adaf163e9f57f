"""The operator's control loops, without Kopf: one evaluation cycle per policy and one step of
a decision's lifecycle at a time. Measures through ``signals``, decides with ``core``,
acts and persists through ``kube``. Called by the Kopf handlers (in worker threads) and
by tests; ``lint`` runs the policy checks of ``policy_context`` offline, for the command line.

A cycle (``cycle``) reads its ``members``, decides in ``plan`` and ``status`` and writes
through ``writes``. A decision's lifecycle (``lifecycle``) moves through ``execution`` and
``validation`` to ``closing``; each transition is decided as a value and written by
``steps.Step.move``."""
