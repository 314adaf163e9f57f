"""Acting: the only code that talks to the Kubernetes API.

Callers (the handlers and the CLI) run these synchronous functions in worker threads, never
on Kopf's event loop.
"""
