-- Subjects and their hashmaps. `record` is the store's record encoding (created, updated and the
-- templates in the nhm-template wire format, peppered when the server has a pepper).
CREATE TABLE subjects (
    id          TEXT COLLATE "C" PRIMARY KEY,
    created     BIGINT NOT NULL,
    updated     BIGINT NOT NULL,
    n_templates INTEGER NOT NULL,
    record      BYTEA NOT NULL
);

-- Configuration stored with the gallery: threshold, template kind and dimension, pepper id.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Change log: replicas poll it to refresh their in-memory galleries.
CREATE TABLE subject_changes (
    seq     BIGSERIAL PRIMARY KEY,
    subject TEXT NOT NULL,
    at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
