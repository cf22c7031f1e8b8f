"""`python -m cds_spine.cli`, as the console script `cds-spine`."""
import sys

from . import app

sys.exit(app())
