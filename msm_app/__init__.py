"""The Streamlit workbench (a surface): shared page helpers; the pages live in ``app_pages/``.

``app.py`` at the repository root is the router. Nothing here holds a database connection or
writes SQL: pages call ``msm`` / ``msm_portfolios`` services through the ``Store`` handle that
:func:`msm_app.ui.store` returns.
"""
