import sys

from permsolve.cli import main

sys.exit(main())
