"""``python -m tidings.runner.cli``: the ``tidings`` command."""

import sys

from tidings.runner.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
