"""The Streamlit workbench (a surface): the pages (``msm_app/pages/``) and the helpers they share.

``app.py`` at the repository root is the router. Nothing here holds a database connection or
writes SQL: pages call ``msm`` / ``msm_portfolios`` services through the ``Store`` handle that
:func:`msm_app.ui.store` returns.
"""
