-- msm_portfolios 0001: portfolio compositions (weights history).
--
-- One composition = every row of one (portfolio_uid, time_index): the weight of each constituent
-- asset from that instant until the portfolio's next composition. Applied after the msm series,
-- whose `portfolio` and `asset` tables it references (RESTRICT: a referenced asset or portfolio
-- cannot be deleted while a composition names it).
--
-- Weights are stored exactly as given: they need not sum to 1 (a cash or residual leg is simply
-- not listed) and may be negative (a short leg). Expansion reports sums that differ from 1; it
-- never renormalizes.

CREATE TABLE portfolio_weights (
    time_index    TIMESTAMPTZ NOT NULL,   -- when this composition takes effect (UTC)
    portfolio_uid UUID NOT NULL REFERENCES portfolio (uid),
    asset_uid     UUID NOT NULL REFERENCES asset (uid),   -- constituents are assets, never portfolios
    weight        DOUBLE NOT NULL CHECK (isfinite(weight)),   -- fraction of the portfolio (0.25 = 25%)
    PRIMARY KEY (time_index, portfolio_uid, asset_uid)
);

-- Reads go by portfolio ("the composition in force at T"); deletes of an asset count by asset.
CREATE INDEX ix_portfolio_weights_portfolio_time ON portfolio_weights (portfolio_uid, time_index);
CREATE INDEX ix_portfolio_weights_asset_uid ON portfolio_weights (asset_uid);
