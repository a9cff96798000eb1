"""msm workbench: the Streamlit app's router (`streamlit run app.py`, or `make run`).

The pages live in ``msm_app/pages/``, one module each, and are declared (title, icon, address,
query parameters) in :mod:`msm_app.links`; this file lists them in navigation order. Each page is
thin: widgets, a call to ``msm`` / ``msm_portfolios`` services, rendering. The database is
``$MSM_DB`` (default ``data/msm.duckdb``), opened briefly for each read or write through one cached
``msm.Store``, so the command line and notebooks keep working on the same file while the app runs.
When Streamlit's login is configured (``[auth]`` in ``.streamlit/secrets.toml``, docs/deploy.md),
:func:`msm_app.auth.require_login` shows only a sign-in screen until a user has signed in.
"""

import streamlit as st

from msm_app import auth, links, ui

st.set_page_config(
    page_title="msm workbench", page_icon=":material/account_balance:", layout="wide", initial_sidebar_state="collapsed"
)

# With `[auth]` in .streamlit/secrets.toml, nobody sees a page (nor is the database opened) before signing in.
auth.require_login(spec.url_path for spec in links.PAGES.values())

PAGES = {
    "Workbench": [
        links.page("overview"),
        links.page("builder"),
        links.page("snapshots"),
        links.page("review"),
        links.page("lookthrough"),
        links.page("holdings"),
        links.page("drift"),
        links.page("rebalance"),
    ],
    "Data": [
        links.page("reference"),
        links.page("marketdata"),
        links.page("export"),
        links.page("audit"),
    ],
}

# Less empty space above each page's title at 1280x800 (a fixed style; no user text is ever put in HTML).
st.html("<style>[data-testid='stMainBlockContainer']{padding-top:3.5rem}</style>")
page = st.navigation(PAGES, position="top")
ui.sidebar()
page.run()
