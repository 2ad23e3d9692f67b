-- Core schema: the plant hierarchy, characteristics, measurements, control limits, alarms,
-- webhook outbox and API keys. The measurements table becomes a hypertable when TimescaleDB is
-- installed in this database (the server creates the extension before migrating, if it may).

CREATE TABLE sites (
    id serial PRIMARY KEY,
    key text NOT NULL UNIQUE,
    name text NOT NULL
);

CREATE TABLE lines (
    id serial PRIMARY KEY,
    site_id int NOT NULL REFERENCES sites(id),
    key text NOT NULL UNIQUE,
    name text NOT NULL
);

CREATE TABLE stations (
    id serial PRIMARY KEY,
    line_id int NOT NULL REFERENCES lines(id),
    key text NOT NULL UNIQUE,
    name text NOT NULL
);

CREATE TABLE characteristics (
    id serial PRIMARY KEY,
    station_id int REFERENCES stations(id),
    key text NOT NULL UNIQUE,
    name text NOT NULL,
    unit text NOT NULL DEFAULT '',
    chart_type text NOT NULL DEFAULT 'imr',
    subgroup_size int NOT NULL DEFAULT 1 CHECK (subgroup_size >= 1),
    lsl double precision,
    usl double precision,
    target double precision,
    rules text NOT NULL DEFAULT 'we',
    -- Good samples collected before limits are fitted automatically (0 = never: engineer sets them).
    baseline_points int NOT NULL DEFAULT 30 CHECK (baseline_points >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE measurements (
    characteristic_id int NOT NULL REFERENCES characteristics(id),
    ts timestamptz NOT NULL,
    value double precision,
    quality smallint NOT NULL DEFAULT 0,   -- 0 good, 1 uncertain, 2 bad
    part_id text,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (characteristic_id, ts),
    CHECK (quality = 2 OR value IS NOT NULL)
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        PERFORM create_hypertable('measurements', 'ts', chunk_time_interval => interval '1 day');
    END IF;
END
$$;

-- Idempotency: a retried batch with the same key is stored once.
CREATE TABLE ingest_batches (
    idempotency_key text PRIMARY KEY,
    agent text,
    accepted int NOT NULL,
    duplicates int NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE control_limits (
    id serial PRIMARY KEY,
    characteristic_id int NOT NULL REFERENCES characteristics(id),
    version int NOT NULL,
    center double precision NOT NULL,
    sigma double precision NOT NULL CHECK (sigma > 0),
    ucl double precision NOT NULL,
    lcl double precision NOT NULL,
    mr_center double precision,
    mr_ucl double precision,
    effective_from timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    reason text NOT NULL,
    UNIQUE (characteristic_id, version)
);

CREATE TABLE alarms (
    id bigserial PRIMARY KEY,
    characteristic_id int NOT NULL REFERENCES characteristics(id),
    rule text NOT NULL,
    first_ts timestamptz NOT NULL,
    last_ts timestamptz NOT NULL,
    point_count int NOT NULL DEFAULT 1,
    limits_version int,
    severity text NOT NULL DEFAULT 'warning',
    state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'acknowledged', 'closed')),
    acknowledged_by text,
    acknowledged_at timestamptz,
    cause text,
    corrective_action text,
    closed_by text,
    closed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alarms_open_idx ON alarms (characteristic_id, rule) WHERE state <> 'closed';

-- One row per (rule, completing point): the restart-safe record that a violation was raised.
CREATE TABLE violations (
    characteristic_id int NOT NULL REFERENCES characteristics(id),
    rule text NOT NULL,
    ts timestamptz NOT NULL,
    alarm_id bigint NOT NULL REFERENCES alarms(id),
    PRIMARY KEY (characteristic_id, rule, ts)
);

CREATE TABLE webhook_subscriptions (
    id serial PRIMARY KEY,
    url text NOT NULL CHECK (url ~ '^https?://'),
    secret text NOT NULL,
    events text[] NOT NULL DEFAULT '{alarm.opened}',
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_outbox (
    id bigserial PRIMARY KEY,
    event_id text NOT NULL,
    subscription_id int NOT NULL REFERENCES webhook_subscriptions(id) ON DELETE CASCADE,
    event_type text NOT NULL,
    payload jsonb NOT NULL,
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    UNIQUE (event_id, subscription_id)
);
CREATE INDEX webhook_outbox_due_idx ON webhook_outbox (next_attempt_at) WHERE state = 'pending';

CREATE TABLE api_keys (
    id serial PRIMARY KEY,
    prefix text NOT NULL UNIQUE,
    key_hash text NOT NULL,
    role text NOT NULL CHECK (role IN ('agent', 'operator', 'engineer', 'admin')),
    scope text,             -- an agent key may be limited to one line key
    name text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

CREATE TABLE agents (
    name text PRIMARY KEY,
    version text,
    last_seen timestamptz NOT NULL,
    buffer_depth bigint NOT NULL DEFAULT 0,
    dropped bigint NOT NULL DEFAULT 0,
    sources jsonb NOT NULL DEFAULT '[]'
);
