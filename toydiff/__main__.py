"""``python -m toydiff``: the ``toydiff`` command (see ``toydiff.cli``)."""

import sys

from toydiff.cli import main

sys.exit(main())
