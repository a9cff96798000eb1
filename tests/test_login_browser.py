"""Sign-in in a real browser (issue 19, item 4): Streamlit's OIDC login, end to end.

One app server with ``[auth]`` in its secrets file (``--secrets.files``; the repository's own
``.streamlit/secrets.toml`` is never written), against a minimal OpenID Connect provider in this
process (tests/fake_oidc.py), and one browser (Debian's chromium, as in tests/test_browser.py). The
database file does not exist at the start, so the test sees that nothing opens it before sign-in.
What AppTest cannot do is done here: the sign-in button's redirect to the provider and back, the
identity cookie, the signed-in user in the sidebar and sign-out.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import fake_oidc
import pytest
from app_harness import ROOT
from test_browser import ARGS, CHROMIUM, VIEWPORT, _free_port, _settle

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is installed by `make test`")

ANA = {"sub": "0001", "email": "ana@example.com", "name": "Ana Analyst"}


def _secrets(path: Path, url: str, provider: fake_oidc.FakeProvider) -> Path:
    path.write_text(
        "[auth]\n"
        f'redirect_uri = "{url}/oauth2callback"\n'
        'cookie_secret = "a-cookie-secret-for-the-login-test-only-0123456789"\n'
        f'client_id = "{fake_oidc.CLIENT_ID}"\n'
        f'client_secret = "{fake_oidc.CLIENT_SECRET}"\n'
        f'server_metadata_url = "{provider.issuer}/.well-known/openid-configuration"\n'
    )
    return path


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    folder = tmp_path_factory.mktemp("login")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    db = folder / "msm.duckdb"  # created by the app on first use, which must come after sign-in
    with fake_oidc.serve(ANA, f"{url}/oauth2callback") as provider:
        secrets = _secrets(folder / "secrets.toml", url, provider)
        command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.address", "127.0.0.1"]
        command += ["--server.port", str(port), "--secrets.files", str(secrets)]
        log = folder / "streamlit.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                command, cwd=ROOT, env={**os.environ, "MSM_DB": str(db)}, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                        if response.read() == b"ok":
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"streamlit did not start: {log.read_text()}")
                time.sleep(0.3)
            yield {"url": url, "db": db, "log": log}
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


def _assert_sign_in_screen(page) -> None:
    page.wait_for_selector("h1:has-text('msm workbench')")
    _settle(page)
    assert page.get_by_role("button", name="Sign in").is_visible()
    assert page.locator("[data-testid='stDialog']").count() == 0, "a dialog (page not found?) covers the screen"
    assert page.locator("[data-testid='stSidebar']").count() == 0
    assert page.locator("[data-testid='stDataFrame'], [data-testid='stMetric']").count() == 0


def test_sign_in_then_the_workbench_then_sign_out(browser, signed: dict) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(f"{signed['url']}/builder")  # a shared link, before sign-in
        _assert_sign_in_screen(page)
        assert page.url == f"{signed['url']}/builder", "the link keeps its address"
        assert not signed["db"].exists(), "the database was opened before sign-in"
        # sign in: to the provider and back, with Streamlit's identity cookie
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector("h1:has-text('Overview')", timeout=60_000)
        _settle(page)
        assert page.url.startswith(signed["url"])
        assert any(c["name"].startswith("_streamlit_user") for c in context.cookies()), context.cookies()
        page.locator(
            "[data-testid='stExpandSidebarButton'], [data-testid='stSidebarCollapsedControl'] button"
        ).first.click()
        sidebar = page.locator("[data-testid='stSidebar']")
        sidebar.get_by_text("Signed in as").wait_for()
        assert "ana@example.com" in sidebar.inner_text()
        assert signed["db"].exists(), "signed in, the workbench opens its database"
        # sign out: the sign-in screen again, also for a link
        sidebar.get_by_role("button", name="Sign out").click()
        _assert_sign_in_screen(page)
        page.goto(f"{signed['url']}/snapshots")
        _assert_sign_in_screen(page)
    except Exception:
        page.screenshot(path=str(signed["log"].with_name("failure.png")), full_page=True)
        print(signed["log"].read_text())
        raise
    finally:
        context.close()
