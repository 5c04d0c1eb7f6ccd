"""The version, in a leaf module so that every layer may show it."""

__version__ = "0.1.0"
