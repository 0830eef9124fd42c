-- How far this device has checked its own account's history in the
-- transparency log (crypto/SPEC.md §16.6): the newest version compared,
-- and that version's canonical device list (NULL: the account deleted).
CREATE TABLE own_log (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,
    devices BLOB
);
