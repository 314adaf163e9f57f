"""Kubernetes: the only code that talks to the API server.

``client`` (connections, reads and writes, error messages), ``rollback`` (patching a workload
back to a revision), ``access`` and ``preflight`` (what the operator may do, checked at start).
Callers (the handlers and the CLI) run these synchronous functions in worker threads, never on
Kopf's event loop.
"""
