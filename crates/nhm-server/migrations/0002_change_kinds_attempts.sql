-- The change log carries every kind of change a replica must re-read, not only subjects.
-- `subject` keeps its name (a replica of the previous version still inserting into it during a
-- rolling upgrade keeps working, and its rows default to kind 'subject'); for the other kinds it
-- holds the key: a meta key, an attempt-counter key, or '' for a 'reload' marker (a bulk load:
-- replicas reload everything instead of re-reading each subject).
ALTER TABLE subject_changes
    ADD COLUMN kind TEXT NOT NULL DEFAULT 'subject'
    CHECK (kind IN ('subject', 'meta', 'attempts', 'reload'));

-- Pruning looks for the newest row older than its horizon.
CREATE INDEX subject_changes_at ON subject_changes (at);

-- Failed-attempt counters shared by the replicas (lockouts hold on every replica). `key` is a
-- subject id or the key of an identify caller; times are Unix seconds, `locked_until` 0 when
-- the key is not locked.
CREATE TABLE attempts (
    key          TEXT COLLATE "C" PRIMARY KEY,
    failures     INTEGER NOT NULL,
    locked_until BIGINT NOT NULL,
    updated      BIGINT NOT NULL
);
