"""``python -m msm_spark expand ...`` (see :mod:`msm_spark.cli`)."""

import sys

from msm_spark.cli import main

sys.exit(main())
