-- msm_portfolios 0002: nested portfolios (design section 12).
-- rebuilds: portfolio_weights
--
-- A composition row now holds an asset OR another portfolio, never both, with the same pattern as
-- `target_positions`: an explicit `constituent_type`, a canonical non-null `constituent_uid` (a
-- copy of the concrete foreign key, so the primary key is non-null for both kinds), and CHECKs
-- that tie the three together. Every existing row is an asset row and is converted as one
-- (constituent_type = 'asset', constituent_uid = asset_uid), its weight untouched. The file runs
-- in one transaction with the table's rebuild (msm.store.rebuild): when anything fails, nothing
-- has changed.
--
-- What no CHECK can say, the one write path (msm_portfolios.compositions.save_composition) refuses
-- inside its transaction: a portfolio that contains itself at any depth, at any time, and a
-- nesting deeper than 8 levels (one graph query over every stored composition plus the new one).

CREATE TABLE portfolio_weights (
    time_index                TIMESTAMPTZ NOT NULL,   -- when this composition takes effect (UTC)
    portfolio_uid             UUID NOT NULL REFERENCES portfolio (uid),
    constituent_type          VARCHAR NOT NULL CHECK (constituent_type IN ('asset', 'portfolio')),
    constituent_uid           UUID NOT NULL,   -- asset_uid or constituent_portfolio_uid, whichever is set
    asset_uid                 UUID REFERENCES asset (uid),
    constituent_portfolio_uid UUID REFERENCES portfolio (uid),   -- a nested portfolio
    weight                    DOUBLE NOT NULL CHECK (isfinite(weight)),   -- fraction of the portfolio (0.25 = 25%)
    PRIMARY KEY (time_index, portfolio_uid, constituent_type, constituent_uid),
    CONSTRAINT ck_portfolio_weights_constituent_reference CHECK (
        (constituent_type = 'asset' AND asset_uid IS NOT NULL AND constituent_portfolio_uid IS NULL
            AND constituent_uid = asset_uid)
     OR (constituent_type = 'portfolio' AND constituent_portfolio_uid IS NOT NULL AND asset_uid IS NULL
            AND constituent_uid = constituent_portfolio_uid)
    ),
    CONSTRAINT ck_portfolio_weights_not_itself CHECK (
        constituent_portfolio_uid IS NULL OR constituent_portfolio_uid <> portfolio_uid
    )
);

INSERT INTO portfolio_weights (time_index, portfolio_uid, constituent_type, constituent_uid, asset_uid, weight)
SELECT time_index, portfolio_uid, 'asset', asset_uid, asset_uid, weight
FROM _rebuild_portfolio_weights;

-- Reads go by portfolio ("the composition in force at T"); deletes count references by constituent.
CREATE INDEX ix_portfolio_weights_portfolio_time ON portfolio_weights (portfolio_uid, time_index);
CREATE INDEX ix_portfolio_weights_asset_uid ON portfolio_weights (asset_uid);
CREATE INDEX ix_portfolio_weights_constituent_portfolio_uid ON portfolio_weights (constituent_portfolio_uid);
