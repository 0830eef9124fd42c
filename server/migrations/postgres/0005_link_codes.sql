-- One-time codes an existing device issues to link a new device.
CREATE TABLE link_codes (
    code_hash BYTEA PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL
);
