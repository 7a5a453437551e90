"""``python -m bayesvol.cli``: the ``bayesvol`` command."""

import sys

from bayesvol.cli import main

sys.exit(main())
