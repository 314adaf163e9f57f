"""The operator's control loops, without Kopf: one evaluation cycle per policy and one step of
a decision's lifecycle at a time. Measures through ``monitoring``, decides with ``domain``,
acts and persists through ``execution``. Called by the Kopf handlers (in worker threads) and
by tests; ``lint`` runs the policy checks of ``policy`` offline, for the command line."""
