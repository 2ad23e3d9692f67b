-- measurements without a per-row foreign key.
--
-- The foreign key to characteristics made PostgreSQL run a lookup and take a KEY SHARE row lock
-- on the characteristic for every row written: 7 of the 10.5 ms of PostgreSQL CPU per 1,000
-- rows ingested (EXPLAIN ANALYZE of a 1,000-row insert; benchmarks/README.md, "server"). The
-- same guarantee now costs one statement per batch:
--   * ingest resolves every key to an existing characteristic and, in the statement that takes
--     its advisory locks, takes KEY SHARE on those characteristics once (the lock the foreign
--     key took per row), so a characteristic cannot disappear while a batch is being written;
--   * deleting a characteristic that has measurements is refused, as the foreign key refused it
--     (the API has no way to delete a characteristic; this guards manual SQL).

ALTER TABLE measurements DROP CONSTRAINT IF EXISTS measurements_characteristic_id_fkey;

CREATE FUNCTION refuse_delete_of_measured_characteristic() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM measurements WHERE characteristic_id = OLD.id) THEN
        RAISE EXCEPTION 'characteristic % (%) has measurements and cannot be deleted', OLD.id, OLD.key
            USING ERRCODE = 'foreign_key_violation',
                  HINT = 'its measurements are the quality record; delete them first if that is really meant';
    END IF;
    RETURN OLD;
END
$$;

CREATE TRIGGER characteristics_keep_measured
    BEFORE DELETE ON characteristics
    FOR EACH ROW EXECUTE FUNCTION refuse_delete_of_measured_characteristic();
