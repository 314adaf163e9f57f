"""rollguard: decides, reproducibly and auditably, when a model deployment must be rolled back."""

__version__ = "0.1.0"
