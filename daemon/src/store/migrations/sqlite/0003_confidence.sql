-- Schema 3: each finding's confidence (low, medium, high) and the reasons for it, as the scan
-- reports them (see the README, "Confidence"). Rows from before get 'medium' and no reasons:
-- what they were reported at when every finding was shown.
ALTER TABLE findings ADD COLUMN confidence TEXT NOT NULL DEFAULT 'medium'
    CHECK (confidence IN ('low', 'medium', 'high'));
-- Comma-separated reason names (`checksum-verified,provider-prefix`); '' for none.
ALTER TABLE findings ADD COLUMN reasons TEXT NOT NULL DEFAULT '';

-- Listing by confidence keeps the order of the other filter indexes (0001).
CREATE INDEX findings_confidence ON findings (confidence, first_seen DESC, fingerprint);

-- The open-findings gauge now groups by confidence too; its covering index (0002) gets the
-- column so the count stays an index range read.
DROP INDEX findings_open_counts;
CREATE INDEX findings_open_counts ON findings (status, severity, rule, source_kind, confidence);
