"""Sign-in (issue 19, item 4): with ``[auth]`` in the secrets the app asks for a login before any page.

Under AppTest: ``at.secrets`` stands for ``.streamlit/secrets.toml`` and ``at.user`` for the identity
Streamlit's OIDC login gives ``st.user``. The sign-in button itself redirects to the provider, which
AppTest cannot follow; what is checked is everything the app does around it: no page and no database
read before sign-in (on every address), the signed-in user and sign-out in the sidebar, and no
sign-in at all without ``[auth]``. ``current_actor`` is checked as a table.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from app_harness import APP, PAGES, ROOT, TITLES, assert_clean
from streamlit.testing.v1 import AppTest

AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "not-a-real-secret-only-for-the-tests-0123456789",
    "client_id": "msm-workbench",
    "client_secret": "not-a-real-client-secret",
    "server_metadata_url": "https://login.example.com/.well-known/openid-configuration",
}
ANA = {"is_logged_in": True, "email": "ana@example.com", "name": "Ana Analyst", "sub": "0001"}
#: Secrets without ``[auth]``. A non-empty ``at.secrets`` replaces the secrets files, so a developer's own
#: ~/.streamlit/secrets.toml cannot switch login on for the tests that run without it.
NO_AUTH = {"unrelated": {"token": "x"}}


def _app(monkeypatch: pytest.MonkeyPatch, db: Path, secrets: dict, user: dict, page: str = "overview") -> AppTest:
    monkeypatch.setenv("MSM_DB", str(db))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets.update(secrets)
    at.user = dict(user)
    at.switch_page(PAGES[page])
    return at.run()


def _sidebar_texts(at: AppTest) -> list[str]:
    return [t.value for t in at.sidebar.text] + [c.value for c in at.sidebar.caption]


def _assert_sign_in_screen(at: AppTest, buttons: list[str]) -> None:
    assert_clean(at)
    assert [t.value for t in at.title] == ["msm workbench"]
    assert [m.value for m in at.markdown] == ["Sign in to open the workbench."]
    assert [b.label for b in at.button] == buttons
    assert not at.sidebar.children, "nothing in the sidebar before sign-in"
    assert not at.dataframe and not at.metric and not at.selectbox and not at.file_uploader


@pytest.mark.parametrize("page", sorted(PAGES))
def test_with_login_configured_every_address_shows_only_the_sign_in_screen(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "never-opened.duckdb"
    at = _app(monkeypatch, db, {"auth": AUTH}, {"is_logged_in": False}, page)
    _assert_sign_in_screen(at, ["Sign in"])
    assert not db.exists(), "the database was opened before sign-in"
    assert TITLES[page] not in [t.value for t in at.title]


def test_signed_in_the_sidebar_names_the_user_and_signs_out(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(monkeypatch, demo, {"auth": AUTH}, ANA)
    assert_clean(at)
    assert [t.value for t in at.title] == [TITLES["overview"]]
    sidebar = _sidebar_texts(at)
    assert "Signed in as" in sidebar and "ana@example.com" in sidebar
    assert [b.label for b in at.sidebar.button] == ["Sign out", "Refresh data"]
    at.sidebar.button(key="sign_out").click().run()
    _assert_sign_in_screen(at, ["Sign in"])


def test_a_user_without_email_is_named_by_name(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(monkeypatch, demo, {"auth": AUTH}, {"is_logged_in": True, "name": "Ana Analyst"})
    assert "Ana Analyst" in _sidebar_texts(at)


def test_named_providers_get_one_button_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = {k: AUTH[k] for k in ("redirect_uri", "cookie_secret")}
    provider = {k: AUTH[k] for k in ("client_id", "client_secret", "server_metadata_url")}
    secrets = {"auth": {**shared, "microsoft": provider, "okta": provider}}
    at = _app(monkeypatch, tmp_path / "msm.duckdb", secrets, {"is_logged_in": False})
    _assert_sign_in_screen(at, ["Sign in with microsoft", "Sign in with okta"])


def test_login_configured_without_a_provider_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {"auth": {k: AUTH[k] for k in ("redirect_uri", "cookie_secret")}}
    at = _app(monkeypatch, tmp_path / "msm.duckdb", secrets, {"is_logged_in": False})
    assert [e.value for e in at.error] == [
        "`[auth]` in .streamlit/secrets.toml names no login provider: give it client_id, client_secret and "
        "server_metadata_url (or one [auth.NAME] section per provider), as docs/deploy.md shows."
    ]
    assert not at.button and not at.sidebar.children
    assert not (tmp_path / "msm.duckdb").exists()


@pytest.mark.parametrize("user", [{"email": "test@example.com"}, ANA], ids=["AppTest's default user", "a login"])
def test_without_login_configured_the_app_opens_as_before(
    user: dict, demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _app(monkeypatch, demo, NO_AUTH, user)
    assert_clean(at)
    assert [t.value for t in at.title] == [TITLES["overview"]]
    assert "Signed in as" not in _sidebar_texts(at)
    assert [b.label for b in at.sidebar.button] == ["Refresh data"]


def _actor_script() -> None:
    import streamlit as st

    from msm_app.auth import current_actor

    st.text(current_actor())


@pytest.mark.parametrize(
    ("secrets", "user", "msm_user", "actor"),
    [
        ({"auth": AUTH}, ANA, "batch", "ana@example.com"),  # the signed-in user wins over $MSM_USER
        ({"auth": AUTH}, {"is_logged_in": True, "name": "Ana Analyst"}, None, "Ana Analyst"),
        ({"auth": AUTH}, {"is_logged_in": True, "email": "  "}, "batch", "batch"),  # a blank claim names nobody
        ({"auth": AUTH}, {"is_logged_in": False}, "batch", "batch"),
        (NO_AUTH, ANA, "batch", "batch"),  # no login configured: an identity in st.user is not trusted
        (NO_AUTH, {}, "  ", "os-user"),  # a blank $MSM_USER is no name
        (NO_AUTH, {}, None, "os-user"),
    ],
)
def test_current_actor(
    secrets: dict, user: dict, msm_user: str | None, actor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import getpass

    monkeypatch.setattr(getpass, "getuser", lambda: "os-user")
    if msm_user is None:
        monkeypatch.delenv("MSM_USER", raising=False)
    else:
        monkeypatch.setenv("MSM_USER", msm_user)
    at = AppTest.from_function(_actor_script, default_timeout=30)
    at.secrets.update(secrets)
    at.user = dict(user)
    at.run()
    assert_clean(at)
    assert [t.value for t in at.text] == [actor]
