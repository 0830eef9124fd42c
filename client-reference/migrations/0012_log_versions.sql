-- The newest version of each account's entry in the transparency log
-- this device verified a lookup proof of (crypto/SPEC.md §16.4): a
-- lookup of an older version is a rollback and is refused.
CREATE TABLE log_versions (
    username TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);
