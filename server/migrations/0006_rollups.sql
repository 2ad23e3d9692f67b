-- Hourly rollups of measurements, kept by the server's maintenance job (with TimescaleDB's Apache
-- edition and plain PostgreSQL alike), so long-range summaries outlive raw-data retention.
CREATE TABLE measurement_rollups_1h (
    characteristic_id int NOT NULL REFERENCES characteristics(id),
    bucket timestamptz NOT NULL,
    n int NOT NULL,
    mean double precision,
    min double precision,
    max double precision,
    stddev double precision,
    bad int NOT NULL,
    PRIMARY KEY (characteristic_id, bucket)
);

CREATE TABLE maintenance_state (
    job text PRIMARY KEY,
    done_until timestamptz NOT NULL,
    last_run timestamptz NOT NULL DEFAULT now()
);
