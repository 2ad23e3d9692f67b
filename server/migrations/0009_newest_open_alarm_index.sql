-- Ingest looks up the newest open SPC alarm of each (characteristic, rule) it raises on
-- (alarms.raised_and_open: ORDER BY id DESC LIMIT 1). With only (characteristic_id, rule) indexed,
-- that read and sorted every open alarm of the pair, a list that grows for as long as nobody closes
-- alarms; with id in the index it is one index entry.
DROP INDEX IF EXISTS alarms_open_idx;
CREATE INDEX alarms_open_spc_newest ON alarms (characteristic_id, rule, id DESC)
    WHERE kind = 'spc' AND state <> 'closed';
