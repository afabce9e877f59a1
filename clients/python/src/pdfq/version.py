"""The client's version, read by the package, its User-Agent and its pyproject.toml."""
__version__ = "0.1.0"
