"""`python -m etl_assets.cli` is `dmetl`."""

import sys

from etl_assets.cli import main

sys.exit(main())
