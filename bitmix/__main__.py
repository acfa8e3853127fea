"""``python -m bitmix``: the same as the ``bitmix`` command."""
import sys

from .cli import main

sys.exit(main())
