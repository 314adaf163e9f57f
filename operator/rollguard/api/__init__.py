"""The API contract: pydantic models of the rollguard.dev/v1alpha1 kinds and their CRD schemas.

Every other layer may import this package; it imports nothing of rollguard's own.
"""

GROUP = "rollguard.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
