-- msm 0003: holdings, prices and FX rates; currencies on assets and accounts.
--
-- New tables: account_holdings_set / account_holdings (what an account holds, UTC-stamped sets),
-- asset_price and fx_rate (market data for valuation). `asset` gains `currency` and two rules
-- (an asset never stands for a portfolio; a cash asset names its currency); `account` gains
-- `base_currency` (the currency its NAV and drift are computed in).
--
-- DuckDB can add neither a CHECK to an existing table nor drop a table a foreign key references,
-- so `asset` and `account` are rebuilt: the line below makes the migration framework copy them
-- (and every table referencing them) to `_rebuild_<table>` and drop them before this SQL runs,
-- and restore the referencing tables, unchanged, after it (msm/store/rebuild.py). All of it is
-- one transaction: when a check below refuses, nothing has changed.
--
-- rebuilds: asset, account

-- 1. Refuse an asset that stands for a portfolio (the new CHECK forbids it; we never drop it).
SELECT error(
    'migration refused: assets with asset_type ''portfolio'' (an asset never stands for a portfolio): '
    || string_agg('''' || unique_identifier || '''', ', ' ORDER BY unique_identifier)
    || '. Give them another asset_type (msm assets import FILE --upsert) or delete them, then run msm init again'
)
FROM _rebuild_asset
WHERE lower(trim(asset_type)) = 'portfolio'
HAVING count(*) > 0;

-- 2. A cash asset must name its currency. By convention its unique_identifier is the ISO code
--    (`USD`), which becomes its currency; a cash asset whose identifier is not a code is refused.
SELECT error(
    'migration refused: cash assets (asset_type ''cash'') whose unique_identifier is not a three-letter '
    || 'upper-case currency code, so their currency cannot be known: '
    || string_agg('''' || unique_identifier || '''', ', ' ORDER BY unique_identifier)
    || '. Rename them to their currency code (USD, EUR, ...) or give them another asset_type, then run msm init again'
)
FROM _rebuild_asset
WHERE lower(trim(asset_type)) = 'cash' AND NOT regexp_full_match(unique_identifier, '[A-Z]{3}')
HAVING count(*) > 0;

-- 3. The rebuilt registry tables: the same columns and rules as before, and the new ones.
CREATE TABLE asset (
    uid               UUID PRIMARY KEY,
    unique_identifier VARCHAR NOT NULL UNIQUE CHECK (length(trim(unique_identifier)) > 0),
    name              VARCHAR,
    ticker            VARCHAR,
    asset_type        VARCHAR,   -- free classification (crypto, equity, cash, ...); never 'portfolio'
    metadata_json     JSON CHECK (metadata_json IS NULL OR json_type(metadata_json) = 'OBJECT'),
    currency          VARCHAR CHECK (currency IS NULL OR regexp_full_match(currency, '[A-Z]{3}')),  -- ISO 4217
    CONSTRAINT ck_asset_not_a_portfolio CHECK (asset_type IS NULL OR lower(trim(asset_type)) <> 'portfolio'),
    -- A cash asset is worth 1 of its currency (it needs no price row).
    CONSTRAINT ck_asset_cash_has_currency CHECK (
        asset_type IS NULL OR lower(trim(asset_type)) <> 'cash' OR currency IS NOT NULL
    )
);

INSERT INTO asset BY NAME
SELECT *, CASE WHEN lower(trim(asset_type)) = 'cash' THEN unique_identifier END AS currency
FROM _rebuild_asset;

CREATE TABLE account (
    uid               UUID PRIMARY KEY,
    unique_identifier VARCHAR NOT NULL UNIQUE CHECK (length(trim(unique_identifier)) > 0),
    account_name      VARCHAR NOT NULL,
    is_paper          BOOLEAN NOT NULL,
    account_is_active BOOLEAN NOT NULL,
    account_group_uid UUID REFERENCES account_group (uid),
    metadata_json     JSON CHECK (metadata_json IS NULL OR json_type(metadata_json) = 'OBJECT'),
    -- NAV, target values and drift are in this currency (ISO 4217).
    base_currency     VARCHAR NOT NULL DEFAULT 'USD' CHECK (regexp_full_match(base_currency, '[A-Z]{3}'))
);

INSERT INTO account BY NAME SELECT *, 'USD' AS base_currency FROM _rebuild_account;

-- 4. Holdings: what an account holds, as UTC-stamped sets (one per account and time).
CREATE TABLE account_holdings_set (
    uid           UUID PRIMARY KEY,
    account_uid   UUID NOT NULL REFERENCES account (uid),
    holdings_time TIMESTAMPTZ NOT NULL,
    source        VARCHAR,
    metadata_json JSON CHECK (metadata_json IS NULL OR json_type(metadata_json) = 'OBJECT'),
    UNIQUE (account_uid, holdings_time),
    -- Lets holdings rows reference (uid, time) together, so a row's time_index must be its set's time.
    UNIQUE (uid, holdings_time)
);

CREATE TABLE account_holdings (
    time_index       TIMESTAMPTZ NOT NULL,   -- always its holdings set's holdings_time
    holdings_set_uid UUID NOT NULL,
    asset_uid        UUID NOT NULL REFERENCES asset (uid),
    quantity         DOUBLE NOT NULL,        -- units held; long-only
    metadata_json    JSON,
    PRIMARY KEY (holdings_set_uid, asset_uid),
    FOREIGN KEY (holdings_set_uid, time_index) REFERENCES account_holdings_set (uid, holdings_time),
    CONSTRAINT ck_account_holdings_quantity CHECK (isfinite(quantity) AND quantity >= 0),
    CONSTRAINT ck_account_holdings_metadata_object CHECK (
        metadata_json IS NULL OR json_type(metadata_json) = 'OBJECT'
    )
);

CREATE INDEX ix_account_holdings_asset_uid ON account_holdings (asset_uid);

-- 5. Market data. A price is in `currency` per unit of the asset; an FX rate says 1 base = rate quote.
CREATE TABLE asset_price (
    time_index TIMESTAMPTZ NOT NULL,
    asset_uid  UUID NOT NULL REFERENCES asset (uid),
    price      DOUBLE NOT NULL,
    currency   VARCHAR NOT NULL CHECK (regexp_full_match(currency, '[A-Z]{3}')),
    source     VARCHAR,
    PRIMARY KEY (asset_uid, time_index),
    CONSTRAINT ck_asset_price_positive CHECK (isfinite(price) AND price > 0)
);

CREATE TABLE fx_rate (
    time_index     TIMESTAMPTZ NOT NULL,
    base_currency  VARCHAR NOT NULL CHECK (regexp_full_match(base_currency, '[A-Z]{3}')),
    quote_currency VARCHAR NOT NULL CHECK (regexp_full_match(quote_currency, '[A-Z]{3}')),
    rate           DOUBLE NOT NULL,   -- 1 base_currency = rate quote_currency
    source         VARCHAR,
    PRIMARY KEY (time_index, base_currency, quote_currency),
    CONSTRAINT ck_fx_rate_positive CHECK (isfinite(rate) AND rate > 0),
    CONSTRAINT ck_fx_rate_two_currencies CHECK (base_currency <> quote_currency)
);

-- Valuation reads the latest rate at or before T per pair.
CREATE INDEX ix_fx_rate_pair_time ON fx_rate (base_currency, quote_currency, time_index);
