"""``python -m du_framework`` runs the ``du`` command line."""

import sys

from .cli import main

sys.exit(main())
