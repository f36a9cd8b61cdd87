-- The open-findings gauge groups open findings by severity, rule and source kind every few
-- seconds; a covering index turns that from a scan of every finding (170 ms at 100 k findings,
-- holding the store while the API waits) into an index range read.
CREATE INDEX findings_open_counts ON findings (status, severity, rule, source_kind);
