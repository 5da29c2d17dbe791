-- 0020 again, as 0022 is 0017 again: for stores that ran it before the
-- runner waited for the INSERTs into readings open when 0019's feed was
-- created. The runner skips it when it ran 0020 itself in the same run;
-- the query service reads readings_by_customer once 0020 and this are
-- recorded.
-- tally:copy-from readings
-- tally:repeats 0020
INSERT INTO tally.readings_by_customer (org_id, meter_key, meter_revision, customer_id, event_id, time, time_ns, value, distinct_value, group_keys, group_values, ingested_at)
SELECT org_id, meter_key, meter_revision, customer_id, event_id, time, time_ns, value, distinct_value, group_keys, group_values, ingested_at
FROM tally.readings
;
