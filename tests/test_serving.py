"""A workbench that is safe to serve (issue 19, item 4): what `make run` listens on, XSRF, the upload limit.

One server for the module: the real `make run` (on a free port, with a temporary database, which it
creates with the demo data), in its own process group, killed whole at the end. Its upload limit is
lowered to 1 MB through Streamlit's environment variable (``STREAMLIT_SERVER_MAX_UPLOAD_SIZE``, the
same as ``--server.maxUploadSize 1``), so one server serves both the address check and the upload
check. One browser: Debian's chromium driven by Playwright, as in tests/test_browser.py.
The sign-in screen (``[auth]`` in the secrets) is tested under AppTest in tests/test_app_auth.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from app_harness import ROOT
from streamlit import config as st_config
from test_browser import ARGS, CHROMIUM, VIEWPORT, _free_port, _settle

import msm
import msm_app.ui

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is installed by `make test`")

CONFIG = ROOT / ".streamlit" / "config.toml"
SECRETS = ROOT / ".streamlit" / "secrets.toml"  # a developer's own, never in the repository
#: The upload limit of the module's server (MB): a 2 MB file is over it.
TEST_LIMIT_MB = 1


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"`make run` did not serve {url}: {log.read_text()}")
        time.sleep(0.5)


def _stop(proc: subprocess.Popen) -> None:
    """Stop the whole process group of `make run` (make, the shell, streamlit)."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _make_env() -> dict[str, str]:
    """The environment for `make`: no database of the caller, and not a sub-make of a `make test`."""
    return {k: v for k, v in os.environ.items() if k not in ("MSM_DB", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    folder = tmp_path_factory.mktemp("serving")
    db = folder / "team.duckdb"  # missing: `make run` creates it with the demo data
    port = _free_port()
    env = _make_env()
    env["STREAMLIT_SERVER_MAX_UPLOAD_SIZE"] = str(TEST_LIMIT_MB)
    # -o: the virtual environment counts as installed (the tests run in it); BIN: this interpreter's scripts
    command = ["make", "--no-print-directory", "-o", ".venv/.installed", "run"]
    command += [f"PORT={port}", f"DB={db}", f"BIN={Path(sys.executable).parent}"]
    log = folder / "make-run.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield {"url": url, "port": port, "db": db, "proc": proc, "log": log}
    finally:
        _stop(proc)


def _listeners(port: int) -> list:
    return [c for c in psutil.net_connections(kind="tcp") if c.laddr.port == port and c.status == psutil.CONN_LISTEN]


def _other_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback (where a team would connect)."""
    return [
        a.address
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family == socket.AF_INET and not a.address.startswith("127.")
    ]


def test_make_run_listens_on_this_machine_only(served: dict) -> None:
    listeners = _listeners(served["port"])
    assert listeners, f"nothing listens on port {served['port']}"
    assert {c.laddr.ip for c in listeners} == {"127.0.0.1"}, [c.laddr for c in listeners]  # not 0.0.0.0 nor ::
    assert {os.getpgid(c.pid) for c in listeners} == {served["proc"].pid}, "the listener is the server `make run` began"
    assert "--server.address 127.0.0.1" in served["log"].read_text()
    assert "warning: serving" not in served["log"].read_text()  # the warning is for another address without sign-in
    for address in _other_addresses():  # from another interface the port is closed
        with socket.socket() as s, pytest.raises(ConnectionRefusedError):
            s.settimeout(5)
            s.connect((address, served["port"]))
    assert served["db"].exists(), "make run created the database it was given, with the demo data"
    # the demo accounts: alpha, beta and gamma (the nested example)
    assert msm.list_accounts(msm.Store(served["db"], read_only=True)).height == 3


@pytest.mark.parametrize(("address", "warned"), [(None, False), ("localhost", False), ("0.0.0.0", True)])
def test_make_run_opens_another_address_only_when_told_and_warns(
    address: str | None, warned: bool, tmp_path: Path
) -> None:
    """`make run ADDRESS=...` (with a stand-in for streamlit that prints its arguments): no sign-in, a warning."""
    stub = tmp_path / "bin" / "streamlit"
    stub.parent.mkdir()
    stub.write_text('#!/bin/sh\necho "streamlit $*"\n')
    stub.chmod(0o755)
    db = tmp_path / "msm.duckdb"
    db.touch()  # exists: make run does not load the demo data
    command = ["make", "--no-print-directory", "-o", ".venv/.installed", "run", f"DB={db}", f"BIN={stub.parent}"]
    command += [f"ADDRESS={address}"] if address else []
    done = subprocess.run(command, cwd=ROOT, env=_make_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (ran,) = [line for line in done.stdout.splitlines() if line.startswith("streamlit ")]
    assert f"--server.address {address or '127.0.0.1'} " in ran
    login_on = SECRETS.exists() and "[auth" in SECRETS.read_text()
    assert ("warning: serving on 0.0.0.0 without sign-in" in done.stderr) == (warned and not login_on), done.stderr


def test_the_server_keeps_xsrf_protection_on(served: dict) -> None:
    with urllib.request.urlopen(f"{served['url']}/_stcore/health", timeout=10) as response:
        assert "_streamlit_xsrf=" in (response.headers.get("Set-Cookie") or "")
    forged = urllib.request.Request(
        f"{served['url']}/_stcore/upload_file/any-session/any-file", data=b"x", method="PUT"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:  # an upload without the page's XSRF token
        urllib.request.urlopen(forged, timeout=10)
    assert refused.value.code == 403


def test_the_config_file_keeps_xsrf_and_the_upload_limit() -> None:
    settings = tomllib.loads(CONFIG.read_text())
    server, browser = settings["server"], settings["browser"]
    assert server["address"] == "127.0.0.1"
    assert server["enableXsrfProtection"] is True and server["enableCORS"] is True
    assert server["headless"] is True and browser["gatherUsageStats"] is False
    assert server["maxUploadSize"] == 50
    # Streamlit's MB are MiB; the app's own check before parsing is the same size
    assert server["maxUploadSize"] * 1024 * 1024 == msm_app.ui.MAX_UPLOAD_BYTES
    known = st_config.get_config_options()
    unknown = [
        f"{section}.{name}" for section, opts in settings.items() for name in opts if f"{section}.{name}" not in known
    ]
    assert not unknown, f"options the installed Streamlit does not know (ignored): {unknown}"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (scripts/system-deps.sh)")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def _assets_uploader(browser, served: dict):
    """A fresh tab on Reference data with the assets' bulk import open; its file uploader."""
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{served['url']}/reference")
    page.wait_for_selector("h1:has-text('Reference data')")
    _settle(page)
    page.locator("[role='tabpanel']:visible [data-testid='stExpander'] summary").filter(
        has_text="Bulk import assets"
    ).click()
    _settle(page)
    return page, page.locator("[data-testid='stFileUploader']:visible").filter(has_text="Import assets from a file")


def _to_add(page):
    return page.locator("[data-testid='stMetric']").filter(
        has=page.locator("[data-testid='stMetricLabel']", has_text="To add")
    )


def _assets_csv(path: Path, *, min_bytes: int = 0) -> Path:
    """A valid assets file (ZED0000000, ZED0000001, ...) of at least ``min_bytes``."""
    lines = ["unique_identifier,name,ticker,asset_type"]
    size, i = len(lines[0]), 0
    while i == 0 or size < min_bytes:
        lines.append(f"ZED{i:07d},Zed asset {i},Z{i},crypto")
        size += len(lines[-1]) + 1
        i += 1
    path.write_text("\n".join(lines) + "\n")
    return path


def test_an_upload_over_the_limit_is_refused_in_the_browser(browser, served: dict, tmp_path: Path) -> None:
    store = msm.Store(served["db"], read_only=True)
    before = dict(msm.table_counts(store).iter_rows())
    # a file within the limit reaches the app: its import is previewed (a dry run: nothing written)
    page, uploader = _assets_uploader(browser, served)
    uploader.locator("input[type='file']").set_input_files(str(_assets_csv(tmp_path / "one.csv")))
    _settle(page)
    assert _to_add(page).locator("[data-testid='stMetricValue']").inner_text().strip() == "1"
    page.context.close()
    # a 2 MB file: Streamlit refuses it with its message; the app never sees it
    big = _assets_csv(tmp_path / "big.csv", min_bytes=2 * 1024 * 1024)
    page, uploader = _assets_uploader(browser, served)
    uploader.locator("input[type='file']").set_input_files(str(big))
    _settle(page)
    chip = uploader.locator("[data-testid='stFileChip']")
    assert chip.get_attribute("aria-invalid") == "true"
    assert f"File must be {TEST_LIMIT_MB:.1f}MB or smaller." in uploader.inner_text()
    assert _to_add(page).count() == 0, "the refused file was read"
    page.context.close()
    assert dict(msm.table_counts(store).iter_rows()) == before
    assert msm.search_candidates(store, "ZED0000000").count == 0
