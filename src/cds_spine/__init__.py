"""cds-spine: a CDS Hooks 2.0 service for conservative therapy before ESI or spine surgery."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cds-spine")
except PackageNotFoundError:  # run from a source tree without installing
    __version__ = "0+source"
