-- Starling server schema, SQLite. Every column is listed with its reason in
-- server/DATA_INVENTORY.md; `starling-server audit` checks the two agree.
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE devices (
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    device_id BIGINT NOT NULL,
    credential_hash BLOB NOT NULL,
    identity_key BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, device_id)
);

CREATE TABLE invites (
    code_hash BLOB PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

CREATE TABLE signed_prekeys (
    account_id BIGINT NOT NULL,
    device_id BIGINT NOT NULL,
    prekey BLOB NOT NULL,
    PRIMARY KEY (account_id, device_id),
    FOREIGN KEY (account_id, device_id) REFERENCES devices(account_id, device_id) ON DELETE CASCADE
);

CREATE TABLE one_time_prekeys (
    account_id BIGINT NOT NULL,
    device_id BIGINT NOT NULL,
    key_id BIGINT NOT NULL,
    prekey BLOB NOT NULL,
    PRIMARY KEY (account_id, device_id, key_id),
    FOREIGN KEY (account_id, device_id) REFERENCES devices(account_id, device_id) ON DELETE CASCADE
);

CREATE TABLE kem_prekeys (
    account_id BIGINT NOT NULL,
    device_id BIGINT NOT NULL,
    key_id BIGINT NOT NULL,
    last_resort BOOLEAN NOT NULL,
    prekey BLOB NOT NULL,
    PRIMARY KEY (account_id, device_id, key_id),
    FOREIGN KEY (account_id, device_id) REFERENCES devices(account_id, device_id) ON DELETE CASCADE
);

CREATE TABLE envelopes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    envelope_id BLOB NOT NULL UNIQUE,
    account_id BIGINT NOT NULL,
    device_id BIGINT NOT NULL,
    sender TEXT,
    sender_device BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    content BLOB NOT NULL,
    FOREIGN KEY (account_id, device_id) REFERENCES devices(account_id, device_id) ON DELETE CASCADE
);
CREATE INDEX envelopes_by_device ON envelopes (account_id, device_id, seq);
CREATE INDEX envelopes_by_expiry ON envelopes (expires_at);
