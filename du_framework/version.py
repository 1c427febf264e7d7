"""The version of du-framework (one place: the package, its metadata and every run record read it here)."""

__version__ = "0.1.0"
