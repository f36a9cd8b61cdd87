-- keyward findings store, SQLite, schema 1.
-- Applied inside the migration transaction; `schema_version` is created and written by the
-- migration code, not here. Secret values are never stored: a finding is its fingerprint and
-- redacted form.

-- One row per secret (fingerprint).
CREATE TABLE findings (
    fingerprint       TEXT    NOT NULL PRIMARY KEY,
    rule              TEXT    NOT NULL,
    rule_name         TEXT    NOT NULL,
    severity          TEXT    NOT NULL,
    redacted          TEXT    NOT NULL,
    validation        TEXT    NOT NULL,
    source_kind       TEXT    NOT NULL,
    status            TEXT    NOT NULL DEFAULT 'open'
                      CHECK (status IN ('open', 'ignored', 'resolved', 'revoked')),
    -- detected_at of the first record() that saw it.
    first_seen        INTEGER NOT NULL,
    -- Earliest content_created over its locations.
    content_created   INTEGER,
    -- Number of rows in `locations` for it, kept by record() so listing needs no join.
    location_count    INTEGER NOT NULL DEFAULT 0,
    status_changed_at INTEGER,
    status_changed_by TEXT,
    status_reason     TEXT
) WITHOUT ROWID;

-- Listing is newest first; each filter column leads an index that keeps that order.
CREATE INDEX findings_first_seen ON findings (first_seen DESC, fingerprint);
CREATE INDEX findings_status ON findings (status, first_seen DESC, fingerprint);
CREATE INDEX findings_severity ON findings (severity, first_seen DESC, fingerprint);
CREATE INDEX findings_rule ON findings (rule, first_seen DESC, fingerprint);
CREATE INDEX findings_source_kind ON findings (source_kind, first_seen DESC, fingerprint);

-- Places a finding was seen. `key` is a hash over the identifying fields (see
-- store::location_key), so the same place is recorded once.
CREATE TABLE locations (
    id              INTEGER PRIMARY KEY,
    fingerprint     TEXT    NOT NULL REFERENCES findings (fingerprint),
    key             TEXT    NOT NULL,
    source          TEXT    NOT NULL,
    source_kind     TEXT    NOT NULL,
    repository      TEXT,
    commit_id       TEXT,
    author          TEXT,
    path            TEXT,
    line            INTEGER NOT NULL,
    col             INTEGER NOT NULL,
    image           TEXT,
    layer           TEXT,
    layer_index     INTEGER,
    deleted         INTEGER NOT NULL,
    content_created INTEGER,
    first_seen      INTEGER NOT NULL,
    UNIQUE (fingerprint, key)
);
CREATE INDEX locations_source ON locations (source, fingerprint);

-- Every status change, oldest first by id.
CREATE TABLE status_history (
    id          INTEGER PRIMARY KEY,
    fingerprint TEXT    NOT NULL REFERENCES findings (fingerprint),
    status      TEXT    NOT NULL,
    changed_by  TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX status_history_fingerprint ON status_history (fingerprint, id);

-- The scan queue.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,
    source      TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    owner       TEXT,
    lease_until INTEGER,
    run_after   INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER,
    last_error  TEXT,
    bytes       INTEGER NOT NULL DEFAULT 0,
    objects     INTEGER NOT NULL DEFAULT 0,
    findings    INTEGER NOT NULL DEFAULT 0
);
-- At most one queued job per source: enqueue() coalesces on it.
CREATE UNIQUE INDEX jobs_one_queued_per_source ON jobs (source) WHERE state = 'queued';
CREATE INDEX jobs_state ON jobs (state, id);
CREATE INDEX jobs_source_state ON jobs (source, state);

-- Opaque per-source scan state, last writer wins.
CREATE TABLE scan_state (
    key        TEXT    NOT NULL PRIMARY KEY,
    bytes      BLOB    NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Objects (layers, manifests, archives by digest) already scanned.
CREATE TABLE scanned (
    kind       TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    scanned_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
