-- msm 0005: drafts and publishing (design section 13).
--
-- `position_set.status` is 'draft' or 'published' (NOT NULL, default 'published': every existing
-- set is published, and a write that says nothing about status publishes, as before). Reads,
-- expansion, export, drift and rebalance see published sets only unless asked for drafts.
--
-- A draft is a position set at its own time: the key UNIQUE (account_target_allocation_uid,
-- position_set_time) holds for drafts and published sets together, so a draft never shares its
-- (allocation, time) with a published set. Publishing flips the status of that one row in one
-- transaction (with its `publish` event), so it can never collide with another set; discarding
-- deletes the draft (its rows are kept in `target_positions_replaced`, with a `discard` event).
-- Who saved a draft is the actor of its `save` / `overwrite` / `restore` events (audit_event).
--
-- DuckDB cannot ADD COLUMN with a CHECK, nor a NOT NULL column on a table target_positions
-- references, so `position_set` is rebuilt (msm/store/rebuild.py): its rows, uids and times are
-- copied as they are, every one of them 'published'. One transaction: nothing changes on failure.
--
-- rebuilds: position_set

CREATE TABLE position_set (
    uid                           UUID PRIMARY KEY,
    account_target_allocation_uid UUID NOT NULL REFERENCES account_target_allocation (uid),
    position_set_time             TIMESTAMPTZ NOT NULL,
    source                        VARCHAR,
    metadata_json                 JSON CHECK (metadata_json IS NULL OR json_type(metadata_json) = 'OBJECT'),
    status                        VARCHAR NOT NULL DEFAULT 'published',
    CONSTRAINT ck_position_set_status CHECK (status IN ('draft', 'published')),
    UNIQUE (account_target_allocation_uid, position_set_time),
    -- Lets target rows reference (uid, time) together, so a row's time_index must be its set's time.
    UNIQUE (uid, position_set_time)
);

INSERT INTO position_set (uid, account_target_allocation_uid, position_set_time, source, metadata_json, status)
SELECT uid, account_target_allocation_uid, position_set_time, source, metadata_json, 'published'
FROM _rebuild_position_set;
