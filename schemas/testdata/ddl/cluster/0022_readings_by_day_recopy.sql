-- 0017 again, for stores that ran it before the runner waited for the
-- INSERTs into readings open when 0016's feed was created: such an INSERT
-- stored its readings in readings only, and usage without a customer
-- filter would miss them. Every reading is copied again; the ones already
-- there fold (ReplacingMergeTree, read with FINAL). The runner skips it
-- when it ran 0017 itself in the same run; the query service reads
-- readings_by_day once 0017 and this are recorded.
-- tally:copy-from readings
-- tally:repeats 0017
INSERT INTO tally.readings_by_day (org_id, meter_key, meter_revision, customer_id, event_id, time, time_ns, value, distinct_value, group_keys, group_values, ingested_at)
SELECT org_id, meter_key, meter_revision, customer_id, event_id, time, time_ns, value, distinct_value, group_keys, group_values, ingested_at
FROM tally.readings
;
