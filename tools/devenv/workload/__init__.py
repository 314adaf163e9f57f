"""The workload simulator: fake model servers for the local cluster's Deployments.

``profile``, ``fleet`` and ``families`` are the pure model (what each revision's metrics look
like, in the shapes real meshes and model servers expose); ``server`` serves them to Prometheus.
"""
