-- Violations by time (chart queries, reductions), not only by rule.
CREATE INDEX violations_by_time ON violations (characteristic_id, ts);
