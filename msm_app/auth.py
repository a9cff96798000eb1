"""Sign-in for a served workbench: Streamlit's own OIDC login when ``[auth]`` is in the secrets.

- :func:`auth_configured`: ``[auth]`` is in ``.streamlit/secrets.toml`` (docs/deploy.md shows one).
  Without it the workbench opens as it always has, for whoever reaches the address.
- :func:`require_login`: with login configured and nobody signed in, the router shows only the
  sign-in screen (a button that calls ``st.login``), at every page's address, and stops the run, so
  no page renders and the database is not opened before someone signs in.
- :func:`user_box`: the signed-in user and a sign-out button, in the sidebar.
- :func:`current_actor`: who is acting, for the audit trail: the signed-in user's email (else
  name, else subject) when logged in, else ``$MSM_USER``, else the operating-system user.

There are no roles: every signed-in user may read and write (docs/deploy.md says so).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

from msm.audit import default_actor

#: The identity claims that name a signed-in user, in order of preference.
IDENTITY_CLAIMS = ("email", "name", "sub")
_ICON = ":material/login:"


def _auth_section() -> Mapping[str, Any]:
    try:
        section = st.secrets.get("auth")
    except (StreamlitSecretNotFoundError, FileNotFoundError):  # no secrets file at all: login is off
        return {}
    return section if isinstance(section, Mapping) else {}


def auth_configured() -> bool:
    """Whether Streamlit's OIDC login is configured (an ``[auth]`` section in the secrets)."""
    return bool(_auth_section())


def providers() -> list[str | None]:
    """The login providers of ``[auth]``: ``[None]`` for one unnamed provider, else each named one.

    ``[auth]`` holding ``client_id`` itself is Streamlit's default provider; ``[auth.NAME]``
    sections are named providers (``st.login("NAME")``), one sign-in button each.
    """
    section = _auth_section()
    if "client_id" in section:
        return [None]
    return [name for name, value in section.items() if isinstance(value, Mapping)]


def is_logged_in() -> bool:
    """Whether a user is signed in through Streamlit's login (never true when login is off)."""
    return auth_configured() and st.user.get("is_logged_in") is True


def _identity() -> str | None:
    for claim in IDENTITY_CLAIMS:
        value = st.user.get(claim)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def current_actor() -> str | None:
    """Who is acting: the signed-in user (email, else name), else ``$MSM_USER``, else the OS user.

    ``None`` when nobody is known (no login, no ``$MSM_USER``, no OS user name): reads work, and a
    write is refused with a message saying to set ``MSM_USER`` (:func:`msm.audit.resolve_actor`).
    """
    if is_logged_in() and (identity := _identity()) is not None:
        return identity
    return default_actor()


def _sign_in_screen() -> None:
    """The only screen before sign-in: what this is, and one button per provider (no data)."""
    st.title("msm workbench")
    st.write("Sign in to open the workbench.")
    if not providers():
        st.error(
            "`[auth]` in .streamlit/secrets.toml names no login provider: give it client_id, client_secret and "
            "server_metadata_url (or one [auth.NAME] section per provider), as docs/deploy.md shows."
        )
    for provider in providers():
        label = "Sign in" if provider is None else f"Sign in with {provider}"
        args = () if provider is None else (provider,)
        st.button(label, key=f"sign_in_{provider or 'default'}", type="primary", on_click=st.login, args=args)


def require_login(url_paths: Iterable[str] = ()) -> None:
    """With login configured and nobody signed in: the sign-in screen, then the run stops here.

    ``url_paths``: the app's page addresses. Each one shows the same sign-in screen, so a shared
    link opens on it (not on "page not found") and keeps its address. Without ``[auth]`` (login
    off) or with a signed-in user this does nothing, and the router goes on.
    """
    if not auth_configured() or is_logged_in():
        return
    screens = [st.Page(_sign_in_screen, title="Sign in", icon=_ICON, default=True)]
    screens += [st.Page(_sign_in_screen, title="Sign in", icon=_ICON, url_path=path) for path in url_paths if path]
    st.navigation(screens, position="hidden").run()
    st.stop()


def user_box() -> None:
    """The signed-in user and a sign-out button (in the sidebar); nothing when login is off."""
    if not is_logged_in():
        return
    st.caption("Signed in as")
    st.text(_identity() or "(no name or email given by the provider)")
    st.button("Sign out", key="sign_out", on_click=st.logout, help="End this session; signing in again is required.")
