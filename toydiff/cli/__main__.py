import sys

from toydiff.cli import main

sys.exit(main())
