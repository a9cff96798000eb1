-- msm 0001: the mandate registry and the pre-ADR, asset-only target positions.
--
-- This is the schema as it stood before ADR 0027: `target_positions` names its target by
-- `asset_identifier`, a string that matched `asset.unique_identifier` by convention only (no
-- foreign key). Migration 0002 replaces it. Every `*_uid` is a UUID, every time a TIMESTAMPTZ
-- held in UTC, every `metadata_json` a JSON object or NULL.
--
-- DuckDB has no ON DELETE CASCADE / SET NULL: foreign keys here are RESTRICT, and the services
-- delete children themselves (see msm/services/registry.py).

CREATE TABLE asset (
    uid               UUID PRIMARY KEY,
    unique_identifier VARCHAR NOT NULL UNIQUE CHECK (length(trim(unique_identifier)) > 0),
    name              VARCHAR,
    ticker            VARCHAR,
    asset_type        VARCHAR,   -- free classification (crypto, equity, ...); never 'portfolio' by design
    metadata_json     JSON CHECK (metadata_json IS NULL OR json_type(metadata_json) = 'OBJECT')
);

-- Portfolio identity / reference data only: compositions live in msm_portfolios.
CREATE TABLE portfolio (
    uid               UUID PRIMARY KEY,
    unique_identifier VARCHAR NOT NULL UNIQUE CHECK (length(trim(unique_identifier)) > 0),
    portfolio_name    VARCHAR,
    metadata_json     JSON CHECK (metadata_json IS NULL OR json_type(metadata_json) = 'OBJECT')
);

CREATE TABLE account_group (
    uid               UUID PRIMARY KEY,
    group_name        VARCHAR NOT NULL UNIQUE CHECK (length(trim(group_name)) > 0),
    group_description VARCHAR,
    metadata_json     JSON CHECK (metadata_json IS NULL OR json_type(metadata_json) = 'OBJECT')
);

CREATE TABLE account (
    uid               UUID PRIMARY KEY,
    unique_identifier VARCHAR NOT NULL UNIQUE CHECK (length(trim(unique_identifier)) > 0),
    account_name      VARCHAR NOT NULL,
    is_paper          BOOLEAN NOT NULL,
    account_is_active BOOLEAN NOT NULL,
    account_group_uid UUID REFERENCES account_group (uid),
    metadata_json     JSON CHECK (metadata_json IS NULL OR json_type(metadata_json) = 'OBJECT')
);

-- A reusable allocation model that many accounts can track.
CREATE TABLE account_allocation_model (
    uid                          UUID PRIMARY KEY,
    allocation_model_name        VARCHAR NOT NULL UNIQUE CHECK (length(trim(allocation_model_name)) > 0),
    allocation_model_description VARCHAR,
    metadata_json                JSON CHECK (metadata_json IS NULL OR json_type(metadata_json) = 'OBJECT')
);

-- The mandate: account -> allocation model. Parent of the position sets.
CREATE TABLE account_target_allocation (
    uid                          UUID PRIMARY KEY,
    unique_identifier            VARCHAR NOT NULL UNIQUE CHECK (length(trim(unique_identifier)) > 0),
    account_uid                  UUID NOT NULL REFERENCES account (uid),
    account_allocation_model_uid UUID NOT NULL REFERENCES account_allocation_model (uid),
    display_name                 VARCHAR,
    is_active                    BOOLEAN NOT NULL,
    source                       VARCHAR,
    metadata_json                JSON CHECK (metadata_json IS NULL OR json_type(metadata_json) = 'OBJECT')
);

-- One UTC-stamped target snapshot of one target allocation.
CREATE TABLE position_set (
    uid                           UUID PRIMARY KEY,
    account_target_allocation_uid UUID NOT NULL REFERENCES account_target_allocation (uid),
    position_set_time             TIMESTAMPTZ NOT NULL,
    source                        VARCHAR,
    metadata_json                 JSON CHECK (metadata_json IS NULL OR json_type(metadata_json) = 'OBJECT'),
    UNIQUE (account_target_allocation_uid, position_set_time),
    -- Lets target rows reference (uid, time) together, so a row's time_index must be its set's time.
    UNIQUE (uid, position_set_time)
);

-- Pre-ADR target rows: asset-only, keyed by the asset's string identifier.
CREATE TABLE target_positions (
    time_index                 TIMESTAMPTZ NOT NULL,
    position_set_uid           UUID NOT NULL REFERENCES position_set (uid),
    asset_identifier           VARCHAR NOT NULL,
    weight_notional_exposure   DOUBLE,
    constant_notional_exposure DOUBLE,
    single_asset_quantity      DOUBLE,
    metadata_json              JSON,
    PRIMARY KEY (time_index, position_set_uid, asset_identifier),
    CHECK ((weight_notional_exposure IS NOT NULL)::INTEGER
         + (constant_notional_exposure IS NOT NULL)::INTEGER
         + (single_asset_quantity IS NOT NULL)::INTEGER = 1)
);
