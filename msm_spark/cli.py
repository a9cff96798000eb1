"""``python -m msm_spark expand``: the look-through of an ``msm export`` folder, on Spark.

``python -m msm_spark expand --input DIR --output DIR2 [--weights-as-of now|position-set|TS] [--net]
[--master URL] [--overwrite] [--format text|json]``

Exit codes, as ``msm``: 0 success; 1 a domain or validation error (one ``error: ...`` line on
stderr, no traceback), including a Spark that cannot start; 2 a usage error. The master is
``--master`` when given; else, under ``spark-submit``, the one it was given; else ``local[*]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from msm.errors import MsmError
from msm.timeutil import format_utc, parse_utc

__all__ = ["build_parser", "main", "spark_session"]

_WEIGHTS_HELP = (
    "which composition each portfolio target uses: 'now' (the latest; default), 'position-set' (the latest at or "
    "before each snapshot's own time), or a time TS with a UTC offset (the latest at or before TS)"
)


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m msm_spark`` parser (one command, ``expand``)."""
    parser = argparse.ArgumentParser(
        prog="python -m msm_spark",
        description="msm workbench look-through on Apache Spark, over the Parquet of `msm export`.",
        epilog="Exit codes: 0 success, 1 domain or validation error (message on stderr), 2 usage error.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = commands.add_parser(
        "expand",
        help="expand an export's portfolio targets to asset exposure",
        description="Read INPUT/target_positions and INPUT/portfolio_weights (written by `msm export --out INPUT`); "
        "write OUTPUT/target_exposure/snapshot_date=YYYY-MM-DD/*.parquet with the rows and columns of "
        "`msm export --expanded` for the same weights time, and OUTPUT/diagnostics/: the compositions used whose "
        "weights do not sum to 1 (expanded as stored, never renormalized), also reported on stdout.",
    )
    p.add_argument(
        "--input", required=True, metavar="DIR", help="an export folder (msm export --out DIR); any path Spark reads"
    )
    p.add_argument(
        "--output", required=True, metavar="DIR2", help="folder to write target_exposure/ and diagnostics/ into"
    )
    p.add_argument("--weights-as-of", default="now", metavar="now|position-set|TS", help=_WEIGHTS_HELP)
    p.add_argument(
        "--net", action="store_true", help="one row per position set and asset, with summed exposures and n_sources"
    )
    p.add_argument(
        "--master",
        default=None,
        metavar="URL",
        help="Spark master (default: the one spark-submit was given, else local[*])",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace target_exposure/ and diagnostics/ when OUTPUT holds them"
    )
    p.add_argument("--format", choices=("text", "json"), default="text", help="json: one JSON document on stdout")
    return parser


def spark_session(master: str | None = None, *, app_name: str = "msm look-through") -> Any:
    """The session of the job: UTC, microsecond Parquet timestamps, plain Parquet folders, quiet console.

    An existing session (a notebook's, or the one ``spark-submit`` made) is reused: the settings
    read at its start (the master, the file system) stay as they were.
    """
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    elif "PYSPARK_GATEWAY_PORT" not in os.environ:  # not launched by spark-submit, which sets the master itself
        builder = builder.master("local[*]")
    spark = (
        builder.config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.ui.showConsoleProgress", "false")
        # Plain Parquet folders, as `msm export` writes them: no _SUCCESS marker, no .crc beside local files
        # (polars refuses a folder with files of mixed extensions).
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
        .config("spark.hadoop.fs.file.impl", "org.apache.hadoop.fs.RawLocalFileSystem")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m msm_spark ...``; return its exit code (0 success, 1 domain error, 2 usage error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2): argparse has printed the message
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        return _expand(args)
    except MsmError as exc:  # as `msm` prints it: the message on stderr; with --format json, the error's data too
        print(f"error: {exc}", file=sys.stderr)
        if args.format == "json":  # the error as data: one JSON line, last on stderr (stdout stays empty)
            print(json.dumps(exc.to_dict(), ensure_ascii=False, separators=(",", ":")), file=sys.stderr)
        return 1


def _expand(args: argparse.Namespace) -> int:
    asked = args.weights_as_of.strip().lower()
    if asked not in ("now", "position-set"):
        parse_utc(
            args.weights_as_of, field="weights_as_of", entity="expansion"
        )  # naive or unparsable: exit 1 before Spark starts
        asked = args.weights_as_of
    try:
        from pyspark.errors import PySparkException
    except ImportError:
        raise MsmError(
            "pyspark is not installed; install the spark extra: pip install 'msm-workbench[spark]'"
        ) from None
    from msm_spark.job import run_expand

    try:
        spark = spark_session(args.master)
    except PySparkException as exc:
        raise MsmError(
            f"cannot start Spark (master {args.master or 'local[*]'}): {_first_line(exc)}; "
            "Spark needs Java 17 or later (JAVA_HOME)"
        ) from None
    result = run_expand(spark, args.input, args.output, weights_as_of=asked, net=args.net, overwrite=args.overwrite)
    diagnostics = [{**d, "weights_time": format_utc(d["weights_time"])} for d in result.diagnostics]
    if args.format == "json":
        print(
            json.dumps(
                {
                    "output": result.output,
                    "datasets": {
                        "target_exposure": {
                            "path": f"{result.output.rstrip('/')}/target_exposure",
                            "rows": result.rows,
                        },
                        "diagnostics": {"path": f"{result.output.rstrip('/')}/diagnostics", "rows": len(diagnostics)},
                    },
                    "net": result.net,
                    "weights_as_of": result.weights_as_of
                    if isinstance(result.weights_as_of, str)
                    else format_utc(result.weights_as_of),
                    "diagnostics": diagnostics,
                }
            )
        )
        return 0
    kind = "netted" if result.net else "expanded"
    print(
        f"wrote {result.rows} {kind} rows to {result.output.rstrip('/')}/target_exposure "
        "(hive-partitioned by snapshot_date)"
    )
    print(f"look-through weights as of {asked}")
    n = len(diagnostics)
    print(
        f"{n} composition{'s' if n != 1 else ''} not summing to 1, in {result.output.rstrip('/')}/diagnostics"
        + (":" if n else "")
    )
    for d in diagnostics:
        print(
            f"  portfolio '{d['portfolio'] or d['portfolio_uid']}' at {d['weights_time']} "
            f"sums to {d['weight_sum']:.12g}, "
            "not 1; expanded as stored (never renormalized)"
        )
    return 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
