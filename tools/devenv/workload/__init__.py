"""The workload simulator: fake model servers for the local cluster's Deployments,
StatefulSets and Argo Rollouts.

``profile``, ``counters``, ``families``, ``kinds`` and ``fleet`` are the pure model (what
each revision's metrics look like, in the shapes real meshes and model servers expose, and
what a workload object says is running); ``watch`` and ``server`` serve them to Prometheus.
"""
