-- Every spc_core chart kind: chart options per characteristic, lot sizes for attributes charts,
-- subgroups for Xbar charts, and limits stored as the chart's own parameters.

ALTER TABLE characteristics ADD COLUMN options jsonb NOT NULL DEFAULT '{}';
ALTER TABLE characteristics ADD CONSTRAINT characteristics_chart_type_check
    CHECK (chart_type IN ('imr', 'xbar-r', 'xbar-s', 'p', 'np', 'c', 'u', 'ewma', 'cusum'));

-- Units inspected (lot size) behind a p, np or u sample; NULL for variables data.
ALTER TABLE measurements ADD COLUMN sample_size double precision;

-- Xbar charts plot subgroups of `subgroup_size` consecutive good samples; a subgroup is stamped
-- with its last sample's time. Samples arriving later than the newest subgroup are stored but
-- not grouped (see the late-sample policy in server/services/spc_eval.py).
CREATE TABLE subgroups (
    characteristic_id int NOT NULL REFERENCES characteristics(id),
    ts timestamptz NOT NULL,
    first_ts timestamptz NOT NULL,
    n int NOT NULL,
    vals double precision[] NOT NULL,
    PRIMARY KEY (characteristic_id, ts)
);

-- Variables charts: center = process mean, sigma = process sigma.
-- Attributes charts: center = p-bar / c-bar / u-bar, sigma = Laney sigma_z (1 for the classic chart).
ALTER TABLE control_limits ALTER COLUMN ucl DROP NOT NULL;
ALTER TABLE control_limits ALTER COLUMN lcl DROP NOT NULL;
ALTER TABLE control_limits ADD COLUMN chart_type text NOT NULL DEFAULT 'imr';
