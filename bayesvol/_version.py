"""The package version, in one place (read by the package root and by the results it writes)."""

__version__ = "0.1.0"
