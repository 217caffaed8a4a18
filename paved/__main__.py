"""`python -m paved`: the same as the `paved` console script."""

import sys

from paved.cli import main

sys.exit(main())
