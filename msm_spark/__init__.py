"""msm_spark: the core's look-through (``msm.expansion``) on Apache Spark, over the Parquet of ``msm export``.

A surface, like ``msm_cli``: it imports ``msm`` (column names, the missing-composition error, time
parsing, the composition checks); ``msm`` never imports it or pyspark. ``python -m msm_spark expand
--input DIR --output DIR2`` runs the job (:mod:`msm_spark.cli`); from Python:

- :func:`msm_spark.expansion.expand_targets_spark` expands DataFrames (lazy rows and diagnostics);
- :func:`msm_spark.job.run_expand` reads an export folder and writes ``target_exposure/`` and
  ``diagnostics/``.

pyspark is the optional extra ``msm-workbench[spark]``; importing this package does not import it.
"""

__all__: list[str] = []
