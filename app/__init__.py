"""Cellar: the notebook store behind a reactive notebook web app."""

from importlib.metadata import PackageNotFoundError, version

try:
    # The one place the version is written is pyproject.toml; the installed metadata carries it.
    __version__ = version("cellar")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
