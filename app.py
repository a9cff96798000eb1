"""msm workbench: the Streamlit app's router (`streamlit run app.py`, or `make run`).

Pages live in ``msm_app/pages/``; each is thin (widgets, calls to ``msm`` / ``msm_portfolios``
services, rendering). The database is ``$MSM_DB`` (default ``data/msm.duckdb``), opened briefly
for each read or write through one cached ``msm.Store``, so the command line and notebooks keep
working on the same file while the app runs.
"""

import streamlit as st

from msm_app import ui

st.set_page_config(
    page_title="msm workbench", page_icon=":material/account_balance:", layout="wide", initial_sidebar_state="collapsed"
)

PAGES = {
    "Workbench": [
        st.Page("msm_app/pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page(
            "msm_app/pages/builder.py", title="Target set builder", icon=":material/edit_note:", url_path="builder"
        ),
        st.Page("msm_app/pages/snapshots.py", title="Snapshots", icon=":material/history:", url_path="snapshots"),
        st.Page(
            "msm_app/pages/lookthrough.py", title="Look-through", icon=":material/account_tree:", url_path="lookthrough"
        ),
    ],
    "Data": [
        st.Page("msm_app/pages/reference.py", title="Reference data", icon=":material/database:", url_path="reference"),
        st.Page("msm_app/pages/export.py", title="Export", icon=":material/download:", url_path="export"),
    ],
}

# Less empty space above each page's title at 1280x800 (a fixed style; no user text is ever put in HTML).
st.html("<style>[data-testid='stMainBlockContainer']{padding-top:3.5rem}</style>")
page = st.navigation(PAGES, position="top")
ui.sidebar()
page.run()
