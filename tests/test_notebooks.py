"""The notebook gallery: every notebook in notebooks/ runs top to bottom against a fresh demo database,
is stored without outputs, and `make notebook` serves them on 127.0.0.1 with a token.

A notebook added to notebooks/ is picked up here without editing this file.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import polars as pl
import pytest
from conftest import table_contents
from nbclient import NotebookClient

import msm
from msm_cli.main import main as msm_main

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
BIN = Path(sys.executable).parent
#: The gallery as it stands.
GALLERY = {"adhoc_expansion.ipynb", "history_and_diff.ipynb", "rebalance.ipynb"}


def _outputs(nb: nbformat.NotebookNode) -> Iterator[dict[str, Any]]:
    for cell in nb.cells:
        if cell.cell_type == "code":
            yield from cell.get("outputs", [])


def _text(nb: nbformat.NotebookNode) -> str:
    """Everything the notebook printed (streams and plain-text results), as one string."""
    return "\n".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in _outputs(nb))


# -- stored form ---------------------------------------------------------------------------------------
def test_the_gallery_is_there() -> None:
    assert GALLERY <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    stored = [
        (i, cell.execution_count, len(cell.outputs))
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not stored, (
        f"{path.name}: cells (index, execution_count, outputs) {stored}; clear all outputs before committing"
    )


# -- running every notebook --------------------------------------------------------------------------
@dataclass(frozen=True)
class Ran:
    """One notebook after a run: its cells with outputs, where it ran, the database before and after."""

    nb: nbformat.NotebookNode
    workdir: Path
    before: dict[str, list[tuple[Any, ...]]]
    after: dict[str, list[tuple[Any, ...]]]


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database filled by `msm demo`, made once; each notebook runs on its own copy."""
    path = tmp_path_factory.mktemp("demo") / "msm.duckdb"
    assert msm_main(["--db", str(path), "demo"]) == 0
    return path


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory, demo_db: Path) -> Callable[[str], Ran]:
    """``ran(name)``: the notebook executed top to bottom (once per module) on a fresh demo database."""
    done: dict[str, Ran] = {}

    def run(name: str) -> Ran:
        if name not in done:
            workdir = tmp_path_factory.mktemp(Path(name).stem)
            db = workdir / "msm.duckdb"
            shutil.copyfile(demo_db, db)
            before = table_contents(msm.Store(db))
            nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("MSM_DB", str(db))
                mp.setenv("MSM_EXPORT_DIR", str(workdir / "exports"))
                client = NotebookClient(
                    nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
                )
                client.execute()
            done[name] = Ran(nb, workdir, before, table_contents(msm.Store(db)))
        return done[name]

    return run


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom_and_only_reads_the_database(path: Path, ran: Callable[[str], Ran]) -> None:
    result = ran(path.name)
    errors = [o for o in _outputs(result.nb) if o.get("output_type") == "error"]
    assert not errors
    assert all(c.execution_count is not None for c in result.nb.cells if c.cell_type == "code")
    assert result.after == result.before  # msm.open is read-only: a notebook never changes the book


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_charts_render_offline(path: Path, ran: Callable[[str], Ran]) -> None:
    """Each notebook draws an altair chart as a widget whose JavaScript is local (no CDN: the lab may be offline).

    altair's default renderer loads Vega from a CDN, and its inline HTML renderer draws only the first
    chart of a page (a re-run cell stays blank); the widget renderer with ``offline=True`` does neither.
    """
    nb = ran(path.name).nb
    views = [
        o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
        for o in _outputs(nb)
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    charts = [state[m]["state"] for m in views if m in state and "vega" in state[m]["state"].get("_esm", "")]
    assert charts, f"{path.name} shows no altair chart widget"
    for chart in charts:
        assert chart["spec"]["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
        assert not re.search(r"""(from|import\()\s*["']https?://""", chart["_esm"]), (
            "the chart loads JavaScript from the web"
        )


def test_adhoc_expansion_notebook_exports_parquet(ran: Callable[[str], Ran]) -> None:
    result = ran("adhoc_expansion.ipynb")
    exported = pl.scan_parquet(
        result.workdir / "exports" / "target_exposure" / "**" / "*.parquet", hive_partitioning=True
    ).collect()
    assert exported.height > 0
    assert "Store(" in _text(result.nb) and "read_only=True" in _text(result.nb)


def test_history_and_diff_notebook_shows_the_demo_rebalance(ran: Callable[[str], Ran]) -> None:
    text = _text(ran("history_and_diff.ipynb").nb)
    assert (
        "example-account-alpha: 2 snapshots; from 2026-05-25 00:00:00+00:00 to 2026-06-01 00:00:00+00:00: "
        "0 added, 0 removed, 2 changed, 0 unchanged"
    ) in text
    assert "-0.05" in text and "0.55" in text and "0.45" in text  # BTC 0.6 -> 0.55, the sleeve 0.4 -> 0.45


def test_rebalance_notebook_reads_the_demo_holdings_and_the_drift_queue(ran: Callable[[str], Ran]) -> None:
    text = _text(ran("rebalance.ipynb").nb)
    assert "example-account-alpha: holdings found in" in text  # the demo holds positions: no scratch copy
    assert "EXAMPLE holdings" not in text
    for column in ("max_abs_drift", "n_breaches", "base_currency"):  # the cross-account drift queue
        assert column in text


# -- make notebook -------------------------------------------------------------------------------------
def _recipe(*args: str) -> list[str]:
    """The shell lines `make notebook` would run (make -n), with the venv assumed built."""
    done = subprocess.run(
        ["make", "-s", "-n", "-o", ".venv/.installed", "notebook", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.replace("\\\n", " ").splitlines()


def test_make_notebook_serves_notebooks_on_localhost_with_a_token(tmp_path: Path) -> None:
    db = tmp_path / "book.duckdb"
    lines = _recipe(f"DB={db}")
    assert any(f'.venv/bin/msm --db "{db}" demo' in line and f'[ ! -f "{db}" ]' in line for line in lines)
    (lab,) = [shlex.split(line) for line in lines if "jupyter lab" in line]
    assert f"MSM_DB={db}" in lab and f"MSM_EXPORT_DIR={ROOT / 'exports'}" in lab
    assert lab[lab.index(".venv/bin/jupyter") + 1] == "lab"
    assert "--ServerApp.ip=127.0.0.1" in lab and "--ServerApp.root_dir=notebooks" in lab and "--no-browser" in lab
    # the token stays on: nothing in the command clears it or opens the server up
    assert not [a for a in lab if re.search(r"token|password|disable_check_xsrf|allow_origin|0\.0\.0\.0|--ip", a)]
    # a relative MSM_DB is made absolute (the kernel runs in notebooks/)
    (relative,) = [shlex.split(line) for line in _recipe("DB=data/other.duckdb") if "jupyter lab" in line]
    assert f"MSM_DB={ROOT / 'data' / 'other.duckdb'}" in relative


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_make_notebook_answers_on_lab_with_its_token(tmp_path: Path, demo_db: Path) -> None:
    """`make notebook` for real (with this interpreter's environment) on a demo database: a lab that answers.

    The database exists already, so the run is only the lab's start-up (the recipe's demo step is the
    test above); the deadline is generous for a loaded machine, a typical run takes a few seconds.
    """
    db, port = tmp_path / "msm.duckdb", _free_port()
    shutil.copyfile(demo_db, db)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_PLATFORM_DIRS": "1"}
    env.pop("JUPYTER_TOKEN", None)
    log = tmp_path / "lab.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            ["make", "-s", "-o", ".venv/.installed", "notebook", f"BIN={BIN}", f"DB={db}", f"NOTEBOOK_PORT={port}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = _wait_for_url(log, port, server, deadline=time.monotonic() + 60)
        assert url.startswith(f"http://127.0.0.1:{port}/lab?token=")
        assert _get(url) == 200
        assert _get(f"http://127.0.0.1:{port}/api/contents") == 403  # no token, no access
        assert _get(url.replace("/lab?", "/api/contents/history_and_diff.ipynb?")) == 200  # it serves notebooks/
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _wait_for_url(log: Path, port: int, server: subprocess.Popen[bytes], *, deadline: float) -> str:
    pattern = re.compile(rf"http://127\.0\.0\.1:{port}/lab\?token=[0-9a-f]+")
    while time.monotonic() < deadline:
        found = pattern.search(log.read_text())
        if found:
            return found.group(0)
        if server.poll() is not None:
            pytest.fail(f"make notebook exited with {server.returncode}:\n{log.read_text()}")
        time.sleep(0.2)
    pytest.fail(f"JupyterLab did not print its URL within the deadline:\n{log.read_text()}")
