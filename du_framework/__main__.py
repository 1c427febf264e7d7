"""``python -m du_framework`` runs the ``unfold`` command line."""

import sys

from .cli import entry

sys.exit(entry())
