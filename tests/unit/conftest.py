"""Unit tests: pure logic, no cluster. The layout mirrors the package (``core/``, ``signals/``,
…); helpers shared across folders (``factory``) live here, on the import path of every test."""
