"""``python -m msm_spark expand ...`` (see :mod:`msm_spark.cli`)."""

import sys

from msm_spark.cli import main

if __name__ == "__main__":
    sys.exit(main())
