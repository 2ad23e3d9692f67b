-- Units inspected per sample for p, np and u charts whose lots have a fixed size: used when a
-- sample does not carry its own `size`.
ALTER TABLE characteristics ADD COLUMN sample_size double precision
    CHECK (sample_size IS NULL OR sample_size > 0);
