"""`python -m guestagent.compat <old-name> [args]`: an old tool's command, run by guestagent."""

import sys

from guestagent.compat import main

sys.exit(main())
