-- Unidentified delivery (crypto/SPEC.md §15.8): the SHA-256 of an
-- account's 16-byte access key, and whether anyone may send it sealed
-- envelopes without one.
ALTER TABLE accounts ADD COLUMN access_key_hash BYTEA;
ALTER TABLE accounts ADD COLUMN sealed_from_strangers BOOLEAN NOT NULL DEFAULT FALSE;
