"""The workbench's pages, one module per page; ``app.py`` routes to them (see ``msm_app.links``)."""
