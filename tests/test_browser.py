"""The workbench in a real browser: `streamlit run app.py` on a free local port, headless Chromium.

One app server and one browser for the module (against a temporary copy of the demo database).
Playwright drives Debian's chromium (/usr/bin/chromium, installed by `make test`); Playwright's own
browser download is not used. This covers what AppTest cannot: typing into the grid's cells and
picking a target from the grid's searchable dropdown, the overwrite dialog as rendered, and every
page as a user sees it (no exception, no error box), and that an edit in the builder's grid reruns
only its fragment. A screenshot of each page is saved to ``$MSM_SCREENSHOTS`` (``make screenshots``
sets it to docs/img; by default a temporary folder). The server runs in its own folder with the
default layout (``data/msm.duckdb``, ``data/exports``), so the pages show what a user's would.

The builder steps here are the browser tutorial's steps (docs/tutorial/).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_harness import ROOT
from streamlit.proto.BackMsg_pb2 import BackMsg

import msm
import msm_portfolios
from msm_cli.main import main as msm_main

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is installed by `make test`")  # a dev extra

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
VIEWPORT = {"width": 1280, "height": 800}
PORTFOLIO = "CRYPTO-MAJORS-EW"
BETA = "example-account-beta"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    folder = tmp_path_factory.mktemp("browser")
    (folder / "data").mkdir()
    db = folder / "data" / "msm.duckdb"
    assert msm_main(["--db", str(db), "demo"]) == 0  # what a new user has after `make run`: holdings included
    port = _free_port()
    # the defaults a user has: the database and the export root relative to where the app is started
    env = {**os.environ, "MSM_DB": "data/msm.duckdb", "MSM_EXPORT_ROOT": "data/exports"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"streamlit did not start: {proc.stdout.read() if proc.stdout else ''}")
        time.sleep(0.3)
    try:
        yield {"url": url, "db": db, "exports": folder / "data" / "exports"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (scripts/system-deps.sh)")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport=VIEWPORT)
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    yield tab
    context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("MSM_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _open(page, server: dict, path: str, title: str) -> None:
    page.goto(f"{server['url']}/{path}")
    page.wait_for_selector(f"h1:has-text('{title}')")
    _settle(page)


def _settle(page) -> None:
    """Wait until Streamlit has finished the rerun (its status widget is gone) and the page is still."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " && !document.querySelector('[data-testid=\"stSkeleton\"]')"
        " && !document.querySelector('[data-stale=\"true\"]')"  # elements of the previous run still on the page
        # an element whose code is still loading (a table, an expander, a link) is an empty container
        ' && [...document.querySelectorAll(\'[data-testid="stMain"] [data-testid="stElementContainer"]\')]'
        ".every(c => c.querySelector('[data-testid]'))"
        # a table shown is drawn (its grid's canvas), not still the pale box of its loading component
        " && [...document.querySelectorAll('[data-testid=\"stDataFrame\"]')]"
        ".every(d => !d.checkVisibility() || d.querySelector('canvas'))",
        timeout=30_000,
    )
    try:  # a frame whose component is still loading has neither the table's canvas nor a chart or image yet
        page.wait_for_function(
            '() => [...document.querySelectorAll(\'[data-testid="stMain"] [data-testid="stFullScreenFrame"]\')]'
            ".every(f => !f.checkVisibility() || f.querySelector('canvas, svg, img'))",
            timeout=5_000,
        )
    except playwright.TimeoutError:  # a frame of another kind: nothing more to wait for
        pass
    page.wait_for_timeout(400)


def _assert_no_error(page) -> None:
    """No exception box, no error message, no traceback (on failure: failure.png in the temp folder)."""
    try:
        assert page.locator("[data-testid='stException']").count() == 0, page.locator(
            "[data-testid='stException']"
        ).all_inner_texts()
        errors = page.locator("[data-testid='stAlertContentError']").all_inner_texts()
        assert errors == [], errors
        assert "Traceback" not in page.content()
    except AssertionError:
        page.screenshot(path=str(Path(tempfile.gettempdir()) / "failure.png"), full_page=True)
        raise


def _metric(page, name: str) -> str:
    metric = (
        page.locator("[data-testid='stMetric']")
        .filter(has=page.locator("[data-testid='stMetricLabel']", has_text=name))
        .first
    )
    return metric.locator("[data-testid='stMetricValue']").inner_text().strip()


def _cells(page, nth: int = 0) -> list[str]:
    """The cell texts of the nth table (its accessible grid, which mirrors the canvas)."""
    table = page.locator("[data-testid='stDataFrame']").nth(nth)
    return [t.strip() for t in table.locator("[role='gridcell']").all_inner_texts()]


def _type_cell(page, x: float, y: float, text: str) -> None:
    """Type into the grid cell at (x, y): select it, open its editor, type, commit."""
    page.mouse.click(x, y)
    page.wait_for_timeout(200)
    page.keyboard.press("Enter")  # open the cell's editor
    page.wait_for_timeout(400)
    page.keyboard.type(text)
    page.wait_for_timeout(300)
    page.keyboard.press("Enter")  # a dropdown picks the first match; a number is committed
    _settle(page)


@pytest.mark.parametrize(
    "path, title, shot",
    [
        ("", "Overview", "overview"),
        ("builder", "Target set builder", None),
        ("snapshots", "Snapshots", "snapshots"),
        ("lookthrough", "Look-through", None),
        ("reference", "Reference data", "reference"),
        ("marketdata", "Market data", "marketdata"),
        ("export", "Export", None),  # its screenshot is taken after an export (test_tutorial_export_in_the_browser)
        ("holdings", "Holdings", "holdings"),
        ("drift", "Drift", None),  # its screenshot is of one account (test_drift_to_rebalance_in_the_browser)
        ("rebalance", "Rebalance", None),
    ],
)
def test_every_page_opens_without_an_error(
    page, server: dict, shots: Path, path: str, title: str, shot: str | None
) -> None:
    _open(page, server, path, title)
    _assert_no_error(page)
    if shot:
        page.screenshot(path=str(shots / f"{shot}.png"))


def _reruns(page) -> list[BackMsg]:
    """Record every rerun request the page sends to the server (from now on, on its websocket)."""
    sent: list[BackMsg] = []

    def frame(payload: str | bytes) -> None:
        if isinstance(payload, bytes):
            message = BackMsg.FromString(payload)
            if message.WhichOneof("type") == "rerun_script":
                sent.append(message)

    page.on("websocket", lambda ws: ws.on("framesent", frame))
    return sent


def test_build_save_overwrite_and_look_through(page, server: dict, shots: Path) -> None:
    store = msm.Store(server["db"])
    reruns = _reruns(page)
    _open(page, server, "builder", "Target set builder")
    # before anything is typed, the blank starter rows are not marked as errors
    _assert_no_error(page)
    assert _metric(page, "Rows with problems") == "0"
    page.screenshot(path=str(Path(tempfile.gettempdir()) / "builder-empty.png"))  # to look at; not in the docs
    opened = len(reruns)
    grid = page.locator("[data-testid='stDataFrame']").first
    grid.scroll_into_view_if_needed()
    box = grid.locator("[data-testid='data-grid-canvas']").bounding_box()
    # fixed column widths (msm_app/pages/builder.py): row marker 32 px, target 240 px, then 100 px per exposure
    row_y = [box["y"] + 35 * (r + 1) + 17 for r in range(2)]
    target_x, weight_x = box["x"] + 32 + 120, box["x"] + 32 + 240 + 50
    _type_cell(page, target_x, row_y[0], "BTC")  # the dropdown is searchable: the first match is picked
    _type_cell(page, weight_x, row_y[0], "0.6")  # shown as 60.00%
    _type_cell(page, target_x, row_y[1], "Crypto Majors")  # searched by the portfolio's name
    _type_cell(page, weight_x, row_y[1], "0.4")
    # each edit reruns the page; wait for the last one to be rendered
    page.wait_for_selector("[data-testid='stMetric']:has-text('Weight sum'):has-text('100.00%')")
    page.wait_for_selector("[data-testid='stDataFrame'] [role='gridcell']:text-is('ETH')", state="attached")
    _settle(page)
    _assert_no_error(page)
    # each edit in the grid reran the grid's fragment only, never the whole page
    edits = reruns[opened:]
    assert len(edits) >= 4 and all(m.rerun_script.fragment_id for m in edits), [
        m.rerun_script.fragment_id for m in edits
    ]
    assert _metric(page, "Weight sum") == "100.00%"
    assert _metric(page, "Residual") == "0.00%"
    # the live look-through preview (second table on the page): BTC direct 0.6 + its share of the 0.4 sleeve
    preview = _cells(page, 1)
    assert "BTC" in preview and "ETH" in preview
    page.keyboard.press("Escape")  # the grid's cell selection is not part of the picture
    page.mouse.move(1200, 780)
    page.wait_for_timeout(300)
    page.screenshot(path=str(shots / "builder.png"), full_page=False)

    page.get_by_role("button", name="Save snapshot").click()
    _settle(page)
    success = page.locator("[data-testid='stAlertContentSuccess']").inner_text()
    assert re.search(r"Saved the snapshot of example-account-alpha at .* UTC \(2 rows\)", success), success
    latest = msm.read_snapshot(store, "example-account-alpha")
    assert latest.source == "workbench" and latest.weight_sum == pytest.approx(1.0)

    # saving again at the same time asks first; the stored snapshot is replaced only on "Replace it"
    page.get_by_role("button", name="Save snapshot").click()
    dialog = page.locator("[role='dialog']")
    dialog.wait_for()
    assert "Replace the existing snapshot?" in dialog.inner_text()
    page.screenshot(path=str(shots / "builder-overwrite.png"))
    dialog.get_by_role("button", name="Replace it").click()
    page.wait_for_selector("[data-testid='stAlertContentSuccess']:has-text('Replaced the snapshot')")
    _settle(page)
    assert msm.snapshot_history(store, "example-account-alpha").height == 3

    # the look-through of the demo snapshot of beta: BTC 0.6 direct plus BTC's share of the 0.4 portfolio
    _open(page, server, "lookthrough", "Look-through")
    page.locator("[data-testid='stSelectbox']").first.click()
    page.keyboard.type(BETA)
    page.keyboard.press("Enter")
    _settle(page)
    _assert_no_error(page)
    share = dict(
        zip(
            *msm_portfolios.read_composition(store, PORTFOLIO)
            .select("asset", "weight")
            .to_dict(as_series=False)
            .values(),
            strict=False,
        )
    )
    cells = _cells(page, 0)
    btc = cells.index("BTC")
    direct, via, weight = (float(v) for v in cells[btc + 1 : btc + 4])
    assert (
        direct == pytest.approx(0.6)
        and via == pytest.approx(0.4 * share["BTC"])
        and weight == pytest.approx(0.6 + 0.4 * share["BTC"])
    )
    page.screenshot(path=str(shots / "lookthrough.png"))


def test_drift_to_rebalance_in_the_browser(page, server: dict, shots: Path) -> None:
    """Tutorials 9 and 10: the drift queue, one account's drift, then its orders and the orders CSV.

    It runs before the tests that add accounts (a hostile name, the tutorial's gamma), so that the
    screenshots show the demo book only.
    """
    _open(page, server, "drift", "Drift")
    _assert_no_error(page)
    main = page.locator("[data-testid='stMain']")
    assert "Accounts by largest drift" in main.inner_text()
    _open(page, server, "drift?account=example-account-alpha", "Drift")
    _assert_no_error(page)
    assert "USD" in _metric(page, "NAV")  # every figure says its currency or unit
    assert _metric(page, "Max |drift|").endswith("pp")
    page.wait_for_selector("[data-testid='stVegaLiteChart']")  # current and target weights
    page.screenshot(path=str(shots / "drift.png"))
    page.get_by_role("link", name="Rebalance this account").click()
    page.wait_for_url("**/rebalance?account=example-account-alpha")
    _settle(page)
    _assert_no_error(page)
    assert "USD" in _metric(page, "Leftover cash") and "%" in _metric(page, "Turnover")
    assert _metric(page, "NAV") == "515,600.00 USD"  # the NAV with its currency
    assert _metric(page, "Max |drift|").endswith("pp")  # in points, as on the Drift page
    page.wait_for_selector("[data-testid='stDownloadButton']:has-text('Download orders CSV')")
    page.screenshot(path=str(shots / "rebalance.png"))
    with page.expect_download() as caught:
        page.get_by_role("button", name=re.compile("Download orders CSV")).click()
    header = Path(caught.value.path()).read_text().splitlines()[0]
    assert header == "account,asset,side,quantity,price,currency,value"


def test_html_in_a_name_is_shown_as_text(page, server: dict) -> None:
    store = msm.Store(server["db"])
    hostile = '<img src=x onerror="window.__pwned=1"> [link](javascript:window.__pwned=2)'
    msm.add_account(store, "hostile-1", account_name=hostile)
    _open(page, server, "builder", "Target set builder")
    # the account was added behind the app's back (as the CLI would): the sidebar's refresh reads it
    page.locator(
        "[data-testid='stExpandSidebarButton'], [data-testid='stSidebarCollapsedControl'] button"
    ).first.click()
    page.get_by_role("button", name="Refresh data").click()
    _settle(page)
    page.locator("[data-testid='stSelectbox']").first.click()
    page.keyboard.type("hostile-1")
    page.keyboard.press("Enter")
    _settle(page)
    _assert_no_error(page)
    assert page.evaluate("() => window.__pwned === undefined")
    assert page.locator("img[src='x']").count() == 0 and page.locator("a[href^='javascript']").count() == 0
    assert "hostile-1 — &lt;img src=x onerror=" in page.content()  # the name is on the page, as escaped text


# -- the browser tutorial's reference-data steps (docs/tutorial/03 and 04), as a user does them --------------
def _add(page, tab: str, fields: dict[str, str], button: str, picks: dict[str, str] | None = None) -> None:
    """In the Reference data ``tab``, fill the add form (text fields by label, dropdowns by typing) and submit."""
    header = page.get_by_role("tab", name=tab, exact=True)
    for _ in range(5):  # a click that lands while the last rerun is still drawing can be lost: click until selected
        header.click()
        _settle(page)
        if header.get_attribute("aria-selected") == "true":
            break
    assert header.get_attribute("aria-selected") == "true", f"the {tab} tab did not open"
    form = page.locator("[data-testid='stForm']:visible").first
    for label, value in fields.items():
        form.get_by_label(re.compile("^" + re.escape(label))).first.fill(value)
    for label, value in (picks or {}).items():
        form.locator("[data-testid='stSelectbox']").filter(has_text=label).first.click()
        page.keyboard.type(value)
        page.keyboard.press("Enter")
        page.wait_for_timeout(300)
    form.get_by_role("button", name=button).click()
    _settle(page)
    _assert_no_error(page)


def test_tutorial_reference_data_and_mandate_in_the_browser(page, server: dict) -> None:
    store = msm.Store(server["db"])
    _open(page, server, "reference", "Reference data")
    # tutorial 3.1: an asset
    _add(
        page,
        "Assets",
        {
            "Unique identifier": "ADA",
            "Name": "Cardano",
            "Ticker": "ADA",
            "Type": "crypto",
            "Metadata (JSON object)": '{"sector": "L1"}',
        },
        "Add asset",
    )
    page.wait_for_selector("[data-testid='stAlertContentSuccess']:has-text('Added asset ADA.')")
    assert msm.get_asset(store, "ADA")["metadata_json"] == {"sector": "L1"}
    # tutorial 3.2: a portfolio
    _add(page, "Portfolios", {"Unique identifier": "L1-EW", "Name": "Layer 1 Equal Weight"}, "Add portfolio")
    page.wait_for_selector("[data-testid='stAlertContentSuccess']:has-text('Added portfolio L1-EW.')")
    # tutorial 3.3: its composition from a file (ETH 50%, SOL 25%, ADA 25%), in force from 2026-06-01 00:00 UTC
    panel = page.locator("[role='tabpanel']:visible")
    panel.locator("[data-testid='stSelectbox']").filter(has_text="Portfolio").last.click()
    page.keyboard.type("L1-EW")
    page.keyboard.press("Enter")
    _settle(page)
    panel.get_by_text("Store a new composition").first.click()
    _settle(page)
    for part, value in (("year", "2026"), ("month", "06"), ("day", "01")):  # the date field's segments
        panel.get_by_role("spinbutton", name=f"{part}, Takes effect on (UTC)").click()
        page.keyboard.type(value)
    page.keyboard.press("Escape")  # close the calendar the field opens
    _settle(page)
    weights = Path(tempfile.mkdtemp()) / "l1-ew.csv"
    weights.write_text("asset,weight\nETH,0.5\nSOL,0.25\nADA,0.25\n")
    panel.locator("[data-testid='stFileUploader']").filter(has_text="or from a file").locator(
        "input[type='file']"
    ).set_input_files(str(weights))
    _settle(page)
    panel.get_by_role("button", name="Store composition").click()
    _settle(page)
    page.wait_for_selector("[data-testid='stAlertContentSuccess']:has-text('Stored the composition of L1-EW')")
    stored = msm_portfolios.read_composition(store, "L1-EW", as_of="2026-06-01T00:00:00Z")
    assert dict(zip(stored["asset"], stored["weight"], strict=False)) == {"ADA": 0.25, "ETH": 0.5, "SOL": 0.25}
    # tutorial 4: the account and its mandate
    _add(page, "Account groups", {"Group name": "Tutorial Accounts"}, "Add account group")
    _add(
        page,
        "Accounts",
        {"Unique identifier": "gamma", "Name": "Account Gamma"},
        "Add account",
        picks={"Account group": "Tutorial Accounts"},
    )
    _add(
        page,
        "Allocation models",
        {"Model name": "Tutorial Balanced", "Description": "60% BTC direct, 40% a Layer 1 sleeve"},
        "Add allocation model",
    )
    _add(
        page,
        "Target allocations",
        {"Unique identifier": "gamma-target"},
        "Add target allocation",
        picks={"Account": "gamma", "Allocation model": "Tutorial Balanced"},
    )
    allocation = msm.get_allocation(store, "gamma-target")
    assert allocation["account_uid"] == msm.get_account(store, "gamma")["uid"] and allocation["is_active"] is True
    assert (
        msm.get_account(store, "gamma")["account_group_uid"] == msm.get_account_group(store, "Tutorial Accounts")["uid"]
    )


def test_tutorial_export_in_the_browser(page, server: dict, shots: Path) -> None:
    """Tutorial 7: export every snapshot with the look-through into `daily` under the export root, then the zip."""
    _open(page, server, "export", "Export")
    page.get_by_role("textbox", name="Folder (under the export root)").fill(
        "daily"
    )  # a form: nothing runs until Export
    page.get_by_text("Include the look-through (target_exposure)").click()
    page.get_by_role("button", name="Export", exact=True).click()
    _settle(page)
    _assert_no_error(page)
    page.wait_for_selector("[data-testid='stAlertContentSuccess']:has-text('Exported')")
    success = page.locator("[data-testid='stAlertContentSuccess']").inner_text()
    assert "to the folder daily under the export root data/exports" in success, success
    assert "/tmp" not in page.locator("[data-testid='stMain']").inner_text()  # no temporary path on the page
    page.locator("[data-testid='stDownloadButton']").scroll_into_view_if_needed()  # the result, with its datasets
    page.wait_for_timeout(300)
    page.screenshot(path=str(shots / "export.png"))
    out = Path(server["exports"]) / "daily"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "account_holdings",  # the demo book holds positions since holdings and drift
        "assets",
        "portfolio_weights",
        "target_exposure",
        "target_positions",
    ]
    page.wait_for_selector("[data-testid='stDownloadButton']:has-text('Download as zip')")
