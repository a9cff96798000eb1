-- msm 0002: ADR 0027, portfolio-aware target positions.
--
-- Rebuilds `target_positions` so each row points at exactly one asset OR one portfolio, with an
-- explicit `target_type` and a canonical, non-null `target_uid`. Every legacy row is converted:
-- asset_identifier -> asset_uid via asset.unique_identifier, target_type = 'asset',
-- target_uid = asset_uid. The whole file runs in one transaction: when a check below fails,
-- nothing has changed. No `asset_identifier` column is left behind.

-- 1. Refuse when a legacy identifier names no asset (the message lists them all).
SELECT error(
    'ADR 0027 migration refused: target_positions.asset_identifier values with no asset '
    || '(no asset.unique_identifier matches): '
    || string_agg(DISTINCT '''' || t.asset_identifier || '''', ', ' ORDER BY '''' || t.asset_identifier || '''')
    || '. Add these assets (msm assets add ID) or delete those target rows, then run msm init again'
)
FROM target_positions AS t
LEFT JOIN asset AS a ON a.unique_identifier = t.asset_identifier
WHERE a.uid IS NULL
HAVING count(*) > 0;

-- 2. Refuse when a legacy row's time differs from its position set's time (the new schema
--    enforces the equality with a foreign key; we never drop such rows silently).
SELECT error(
    'ADR 0027 migration refused: ' || count(*) || ' target_positions rows have a time_index that is not '
    || 'their position set''s position_set_time (first: position_set_uid ' || min(t.position_set_uid)::VARCHAR
    || '). Fix or delete those rows, then run msm init again'
)
FROM target_positions AS t
JOIN position_set AS p ON p.uid = t.position_set_uid
WHERE t.time_index <> p.position_set_time
HAVING count(*) > 0;

-- 3. Keep the legacy rows, converted, while the table is rebuilt.
CREATE TEMP TABLE _adr0027_converted AS
SELECT t.time_index,
       t.position_set_uid,
       'asset'     AS target_type,
       a.uid       AS target_uid,
       a.uid       AS asset_uid,
       NULL::UUID  AS portfolio_uid,
       t.weight_notional_exposure,
       t.constant_notional_exposure,
       t.single_asset_quantity,
       t.metadata_json
FROM target_positions AS t
JOIN asset AS a ON a.unique_identifier = t.asset_identifier;

DROP TABLE target_positions;

CREATE TABLE target_positions (
    time_index                 TIMESTAMPTZ NOT NULL,   -- always its position set's position_set_time
    position_set_uid           UUID NOT NULL,
    target_type                VARCHAR NOT NULL CHECK (target_type IN ('asset', 'portfolio')),
    -- A copy of the concrete FK below, so the storage identity is non-null for both kinds.
    target_uid                 UUID NOT NULL,
    asset_uid                  UUID REFERENCES asset (uid),
    portfolio_uid              UUID REFERENCES portfolio (uid),
    weight_notional_exposure   DOUBLE,   -- a fraction of the account's notional (0.6 = 60%)
    constant_notional_exposure DOUBLE,   -- an absolute notional amount in the account currency
    single_asset_quantity      DOUBLE,   -- units of one asset; never on a portfolio row
    metadata_json              JSON,
    PRIMARY KEY (time_index, position_set_uid, target_type, target_uid),
    FOREIGN KEY (position_set_uid, time_index) REFERENCES position_set (uid, position_set_time),
    CONSTRAINT ck_target_positions_target_reference CHECK (
        (target_type = 'asset' AND asset_uid IS NOT NULL AND portfolio_uid IS NULL AND target_uid = asset_uid)
     OR (target_type = 'portfolio' AND portfolio_uid IS NOT NULL AND asset_uid IS NULL AND target_uid = portfolio_uid)
    ),
    CONSTRAINT ck_target_positions_single_exposure CHECK (
        (weight_notional_exposure IS NOT NULL)::INTEGER
      + (constant_notional_exposure IS NOT NULL)::INTEGER
      + (single_asset_quantity IS NOT NULL)::INTEGER = 1
    ),
    CONSTRAINT ck_target_positions_finite_exposure CHECK (
        isfinite(coalesce(weight_notional_exposure, constant_notional_exposure, single_asset_quantity))
    ),
    CONSTRAINT ck_target_positions_portfolio_no_quantity CHECK (
        target_type <> 'portfolio' OR single_asset_quantity IS NULL
    ),
    CONSTRAINT ck_target_positions_metadata_object CHECK (
        metadata_json IS NULL OR json_type(metadata_json) = 'OBJECT'
    )
);

CREATE INDEX ix_target_positions_asset_uid ON target_positions (asset_uid);
CREATE INDEX ix_target_positions_portfolio_uid ON target_positions (portfolio_uid);
CREATE INDEX ix_target_positions_set_target ON target_positions (position_set_uid, target_type, target_uid);

INSERT INTO target_positions BY NAME SELECT * FROM _adr0027_converted;
DROP TABLE _adr0027_converted;
