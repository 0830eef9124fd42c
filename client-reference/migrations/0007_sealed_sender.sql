-- Sealed sender: the server certificate keys this device trusts (pinned at
-- registration or linking, extended only by keys their predecessor
-- endorsed) and its current sender certificate with when it was fetched.
CREATE TABLE sealed_sender (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    trusted_keys BLOB,
    certificate BLOB,
    certificate_fetched_at INTEGER
);
