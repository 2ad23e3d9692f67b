-- Alarms about the collection chain (an agent gone silent, a source down) beside SPC alarms;
-- the configurable list of assignable causes; the append-only audit trail.

ALTER TABLE alarms ALTER COLUMN characteristic_id DROP NOT NULL;
ALTER TABLE alarms ADD COLUMN kind text NOT NULL DEFAULT 'spc'
    CHECK (kind IN ('spc', 'agent_silent', 'source_down'));
ALTER TABLE alarms ADD COLUMN subject text;   -- agent name, or "agent/source", for non-SPC kinds
ALTER TABLE alarms ADD COLUMN detail text;
ALTER TABLE alarms ADD CONSTRAINT alarms_subject_check
    CHECK ((kind = 'spc') = (characteristic_id IS NOT NULL));
CREATE UNIQUE INDEX alarms_one_open_chain_alarm ON alarms (kind, subject)
    WHERE kind <> 'spc' AND state <> 'closed';

CREATE TABLE alarm_causes (
    key text PRIMARY KEY,
    label text NOT NULL,
    category text NOT NULL DEFAULT 'other',  -- the 6M: man, machine, method, material, measurement, environment
    active boolean NOT NULL DEFAULT true
);
INSERT INTO alarm_causes (key, label, category) VALUES
    ('tool_wear', 'Tool wear', 'machine'),
    ('tool_breakage', 'Tool breakage', 'machine'),
    ('setup_error', 'Setup / offset error', 'method'),
    ('material_batch', 'Material batch change', 'material'),
    ('gauge_error', 'Gauge or sensor error', 'measurement'),
    ('temperature', 'Ambient temperature', 'environment'),
    ('operator_change', 'Operator or shift change', 'man'),
    ('maintenance', 'After maintenance', 'machine'),
    ('false_alarm', 'No assignable cause found', 'other');

CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    subject text NOT NULL,
    details jsonb NOT NULL DEFAULT '{}'
);

-- Evidence for audits (IATF 16949, FDA 21 CFR 11): rows may be added, never changed or removed,
-- whatever the API does. TRUNCATE is refused too.
CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END
$$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
