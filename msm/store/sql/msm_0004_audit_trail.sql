-- msm 0004: the audit trail (design section 13).
--
-- `audit_event`: one row per change, written by `msm.audit` in the same transaction as the change
-- (an aborted write leaves none). `entity_uid` and `account_uid` carry no foreign key on purpose:
-- an event outlives the row it describes (a deleted account keeps its history).
--
-- `target_positions_replaced`: every target row an overwrite (or a delete) removed, with the
-- version it was (1 = the first replaced version of that position set), when and by whom it was
-- replaced, and its position set's source and metadata at the time. It has the row rules of
-- `target_positions` and no foreign keys: history never blocks the delete of an asset, a
-- portfolio or a position set (a restore re-validates the rows against the registry).
--
-- Two new tables only: existing tables and rows are untouched.

CREATE TABLE audit_event (
    uid         UUID PRIMARY KEY,
    event_time  TIMESTAMPTZ NOT NULL,
    actor       VARCHAR NOT NULL,
    action      VARCHAR NOT NULL,
    entity_type VARCHAR NOT NULL,
    entity_uid  UUID,
    account_uid UUID,
    reason      VARCHAR,
    before_json JSON,
    after_json  JSON,
    CONSTRAINT ck_audit_event_actor CHECK (length(trim(actor)) > 0 AND length(actor) <= 200),
    CONSTRAINT ck_audit_event_action CHECK (
        action IN ('add', 'update', 'delete', 'save', 'overwrite', 'restore', 'import', 'publish', 'discard')
    ),
    CONSTRAINT ck_audit_event_entity_type CHECK (
        entity_type IN ('asset', 'portfolio', 'account_group', 'account', 'allocation_model', 'allocation',
                        'position_set', 'composition', 'holdings_set', 'price', 'fx_rate')
    ),
    CONSTRAINT ck_audit_event_reason CHECK (reason IS NULL OR (length(trim(reason)) > 0 AND length(reason) <= 2000)),
    CONSTRAINT ck_audit_event_before_object CHECK (before_json IS NULL OR json_type(before_json) = 'OBJECT'),
    CONSTRAINT ck_audit_event_after_object CHECK (after_json IS NULL OR json_type(after_json) = 'OBJECT'),
    CONSTRAINT ck_audit_event_has_a_side CHECK (before_json IS NOT NULL OR after_json IS NOT NULL)
);

CREATE TABLE target_positions_replaced (
    -- the columns of target_positions, with its row rules
    time_index                 TIMESTAMPTZ NOT NULL,
    position_set_uid           UUID NOT NULL,
    target_type                VARCHAR NOT NULL CHECK (target_type IN ('asset', 'portfolio')),
    target_uid                 UUID NOT NULL,
    asset_uid                  UUID,
    portfolio_uid              UUID,
    weight_notional_exposure   DOUBLE,
    constant_notional_exposure DOUBLE,
    single_asset_quantity      DOUBLE,
    metadata_json              JSON,
    -- which replaced version of the position set, when, by whom, and the set's fields then
    version                    INTEGER NOT NULL,
    replaced_at                TIMESTAMPTZ NOT NULL,
    replaced_by                VARCHAR NOT NULL,
    set_source                 VARCHAR,
    set_metadata_json          JSON,
    PRIMARY KEY (position_set_uid, version, target_type, target_uid),
    CONSTRAINT ck_target_positions_replaced_version CHECK (version >= 1),
    CONSTRAINT ck_target_positions_replaced_by CHECK (length(trim(replaced_by)) > 0),
    CONSTRAINT ck_target_positions_replaced_target_reference CHECK (
        (target_type = 'asset' AND asset_uid IS NOT NULL AND portfolio_uid IS NULL AND target_uid = asset_uid)
     OR (target_type = 'portfolio' AND portfolio_uid IS NOT NULL AND asset_uid IS NULL AND target_uid = portfolio_uid)
    ),
    CONSTRAINT ck_target_positions_replaced_single_exposure CHECK (
        (weight_notional_exposure IS NOT NULL)::INTEGER
      + (constant_notional_exposure IS NOT NULL)::INTEGER
      + (single_asset_quantity IS NOT NULL)::INTEGER = 1
    ),
    CONSTRAINT ck_target_positions_replaced_finite_exposure CHECK (
        isfinite(coalesce(weight_notional_exposure, constant_notional_exposure, single_asset_quantity))
    ),
    CONSTRAINT ck_target_positions_replaced_portfolio_no_quantity CHECK (
        target_type <> 'portfolio' OR single_asset_quantity IS NULL
    ),
    CONSTRAINT ck_target_positions_replaced_metadata_object CHECK (
        metadata_json IS NULL OR json_type(metadata_json) = 'OBJECT'
    ),
    CONSTRAINT ck_target_positions_replaced_set_metadata_object CHECK (
        set_metadata_json IS NULL OR json_type(set_metadata_json) = 'OBJECT'
    )
);
