"""``python -m rollguard.cli``: the ``rollguard`` command, where it is not installed as one."""

import sys

from rollguard.cli import main

sys.exit(main())
