-- Opaque attachment blobs: the bytes live in <data dir>/attachments/<id>.
CREATE TABLE attachments (
    id BYTEA PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    size BIGINT NOT NULL,
    received BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX attachments_by_expiry ON attachments (expires_at);
