"""The package version, in one place for the code (keep it equal to pyproject.toml's
``version``; tests/test_architecture.py checks that they agree)."""

__version__ = "0.1.0"
