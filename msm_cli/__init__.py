"""The ``msm`` command line: a surface over :mod:`msm` (and ``msm_portfolios``), kept out of the core package.

Entry point :func:`msm_cli.main.main`; one module per area of commands (see :mod:`msm_cli.commands`).
"""
