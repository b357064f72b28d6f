"""``python -m popmix.cli``: the ``popmix`` command."""

import sys

from popmix.cli import main

sys.exit(main())
