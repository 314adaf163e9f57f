"""Kopf glue: the only code that imports kopf. One module per kind, each thin: it reads the
event, calls the domain to decide and the execution layer to act, and persists status."""
