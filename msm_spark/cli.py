"""``python -m msm_spark expand|drift``: the look-through, and the drift, of an ``msm export`` folder, on Spark.

``python -m msm_spark expand --input DIR --output DIR2 [--weights-as-of now|position-set|TS] [--net]
[--master URL] [--overwrite] [--format text|json]``

``python -m msm_spark drift --input DIR --output DIR2 [--as-of TS] [--weights-as-of ...] [--band-abs X]
[--band-rel Y] [--master URL] [--overwrite]``

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

from msm.drift import DEFAULT_BAND_ABS
from msm.errors import MsmError
from msm.timeutil import format_utc, parse_utc, utc_now

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
    _drift_parser(commands)
    return parser


def _drift_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "drift",
        help="the drift of every active account of an export",
        description="Read an export written by `msm export --out INPUT --drift` and write "
        "OUTPUT/drift/snapshot_date=YYYY-MM-DD/*.parquet with the rows and columns of the export's drift/ "
        "(as `msm drift --all --format parquet`, with valuation_time) for the valuation time --as-of.",
    )
    p.add_argument("--input", required=True, metavar="DIR", help="an export folder (msm export --out DIR --drift)")
    p.add_argument("--output", required=True, metavar="DIR2", help="folder to write drift/ into")
    p.add_argument("--as-of", metavar="TS", help="valuation time, ISO-8601 with a UTC offset (default: now)")
    p.add_argument(
        "--weights-as-of",
        default=None,
        metavar="now|position-set|TS",
        help="which compositions portfolio targets use (default: the valuation time)",
    )
    p.add_argument("--band-abs", type=float, default=DEFAULT_BAND_ABS, metavar="X", help="absolute band (default 0.05)")
    p.add_argument("--band-rel", type=float, default=None, metavar="Y", help="relative band (default: not checked)")
    p.add_argument("--master", default=None, metavar="URL", help="Spark master (default: local[*])")
    p.add_argument("--overwrite", action="store_true", help="replace drift/ when OUTPUT holds it")


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
        return _expand(args) if args.command == "expand" else _drift(args)
    except MsmError as exc:  # as `msm` prints it: the message on stderr; with --format json, the error's data too
        print(f"error: {exc}", file=sys.stderr)
        if getattr(args, "format", "text") == "json":  # the error as data: one JSON line, last on stderr
            print(json.dumps(exc.to_dict(), ensure_ascii=False, separators=(",", ":")), file=sys.stderr)
        return 1


def _expand(args: argparse.Namespace) -> int:
    asked = args.weights_as_of.strip().lower()
    if asked not in ("now", "position-set"):
        parse_utc(
            args.weights_as_of, field="weights_as_of", entity="expansion"
        )  # naive or unparsable: exit 1 before Spark starts
        asked = args.weights_as_of
    spark = _session(args.master)
    from msm_spark.job import run_expand

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


def _drift(args: argparse.Namespace) -> int:
    """``python -m msm_spark drift``: checks the times before Spark starts, then runs the job."""
    at = parse_utc(args.as_of, field="as_of", entity="drift") if args.as_of else utc_now()
    asked = None
    if args.weights_as_of is not None:
        asked = args.weights_as_of.strip().lower()
        if asked not in ("now", "position-set"):
            parse_utc(args.weights_as_of, field="weights_as_of", entity="expansion")
            asked = args.weights_as_of
    from msm_spark.drift import run_drift

    spark = _session(args.master)
    rows = run_drift(
        spark,
        args.input,
        args.output,
        as_of=at,
        weights_as_of=asked,
        band_abs=args.band_abs,
        band_rel=args.band_rel,
        overwrite=args.overwrite,
    )
    print(f"wrote {rows} drift rows at {format_utc(at)} to {args.output.rstrip('/')}/drift")
    return 0


def _session(master: str | None) -> Any:
    try:
        from pyspark.errors import PySparkException
    except ImportError:
        raise MsmError(
            "pyspark is not installed; install the spark extra: pip install 'msm-workbench[spark]'"
        ) from None
    try:
        return spark_session(master)
    except PySparkException as exc:
        raise MsmError(
            f"cannot start Spark (master {master or 'local[*]'}): {_first_line(exc)}; "
            "Spark needs Java 17 or later (JAVA_HOME)"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
