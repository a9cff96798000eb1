"""``msm.open``: the workbench database for a notebook cell or a script, read-only unless asked.

A notebook reads the same file the app and the command line use, often while they run. ``msm.open``
gives it a :class:`~msm.store.Store` with the connection policy already right: the file is held only
for the moment of each call, the path defaults as the command line's does, and the handle is
read-only unless ``read_only=False`` is asked, so a stray cell cannot change the book.

>>> import msm
>>> writer = msm.open("book.duckdb", read_only=False)  # a writable handle; the file is made on first use
>>> [str(m) for m in msm.migrate(writer)][:1]
['msm 0001 registry_and_asset_targets']
>>> _ = msm.add_asset(writer, "BTC", name="Bitcoin")
>>> store = msm.open("book.duckdb")
>>> store
Store('book.duckdb', read_only=True)
>>> msm.list_assets(store)["unique_identifier"].to_list()
['BTC']
>>> msm.add_asset(store, "ETH", name="Ether")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
msm.errors.StoreReadOnlyError: database file book.duckdb is open read-only, ... msm.open('book.duckdb', read_only=False)
"""

from __future__ import annotations

import os

from msm.store import MSM_MIGRATIONS, Store, check_schema

__all__ = ["open"]


# Named like the builtin on purpose (``msm.open`` reads well in a cell); msm keeps it out of ``from msm import *``.
def open(path: str | os.PathLike[str] | None = None, *, read_only: bool = True, busy_timeout: float = 10.0) -> Store:
    """The database at ``path`` (default ``$MSM_DB``, else ``data/msm.duckdb``), read-only by default.

    Read-only, the file must exist with the current ``msm`` schema (else a
    :class:`~msm.errors.SchemaError` says how to create or migrate it), and every write is refused
    with :class:`~msm.errors.StoreReadOnlyError`. With ``read_only=False`` it is a plain
    :class:`~msm.store.Store` (the file is created on first use; ``msm.migrate`` may upgrade it).
    Either way no connection is kept between calls, and a file another program is writing is
    waited for up to ``busy_timeout`` seconds.
    """
    store = Store(path, busy_timeout=busy_timeout, read_only=read_only)
    if read_only:
        check_schema(store, (MSM_MIGRATIONS,))
    return store
