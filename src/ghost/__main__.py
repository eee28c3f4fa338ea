"""`python -m ghost ...` (and `torchrun -m ghost ...`) run the command line."""

import sys

from ghost.cli import main

sys.exit(main())
