-- The transparency log as this device follows it (crypto/SPEC.md §16.4):
-- the log key and VRF key pinned at setup, and the newest root verified
-- the whole way to (append-only from the one before), as the log key
-- signed it, with its epoch.
CREATE TABLE transparency_log (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    log_key BLOB NOT NULL,
    vrf_public_key BLOB NOT NULL,
    epoch INTEGER,
    signed_root BLOB
);
