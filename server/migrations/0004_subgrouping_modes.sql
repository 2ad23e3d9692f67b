-- How Xbar charts form subgroups: `subgroup_size` consecutive samples, all samples of one part
-- (part_id), or all samples of one time window of `subgroup_window_s` seconds.
ALTER TABLE characteristics ADD COLUMN subgrouping text NOT NULL DEFAULT 'consecutive'
    CHECK (subgrouping IN ('consecutive', 'part', 'time'));
ALTER TABLE characteristics ADD COLUMN subgroup_window_s double precision
    CHECK (subgroup_window_s IS NULL OR subgroup_window_s > 0);
