-- Starling server schema, PostgreSQL. Every column is listed with its reason in
-- server/DATA_INVENTORY.md; `starling-server audit` checks the two agree.
CREATE TABLE accounts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE devices (
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    device_id BIGINT NOT NULL,
    credential_hash BYTEA NOT NULL,
    identity_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, device_id)
);

CREATE TABLE invites (
    code_hash BYTEA PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

CREATE TABLE signed_prekeys (
    account_id BIGINT NOT NULL,
    device_id BIGINT NOT NULL,
    prekey BYTEA NOT NULL,
    PRIMARY KEY (account_id, device_id),
    FOREIGN KEY (account_id, device_id) REFERENCES devices(account_id, device_id) ON DELETE CASCADE
);

CREATE TABLE one_time_prekeys (
    account_id BIGINT NOT NULL,
    device_id BIGINT NOT NULL,
    key_id BIGINT NOT NULL,
    prekey BYTEA NOT NULL,
    PRIMARY KEY (account_id, device_id, key_id),
    FOREIGN KEY (account_id, device_id) REFERENCES devices(account_id, device_id) ON DELETE CASCADE
);

CREATE TABLE kem_prekeys (
    account_id BIGINT NOT NULL,
    device_id BIGINT NOT NULL,
    key_id BIGINT NOT NULL,
    last_resort BOOLEAN NOT NULL,
    prekey BYTEA NOT NULL,
    PRIMARY KEY (account_id, device_id, key_id),
    FOREIGN KEY (account_id, device_id) REFERENCES devices(account_id, device_id) ON DELETE CASCADE
);

CREATE TABLE envelopes (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    envelope_id BYTEA NOT NULL UNIQUE,
    account_id BIGINT NOT NULL,
    device_id BIGINT NOT NULL,
    sender TEXT,
    sender_device BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    content BYTEA NOT NULL,
    FOREIGN KEY (account_id, device_id) REFERENCES devices(account_id, device_id) ON DELETE CASCADE
);
CREATE INDEX envelopes_by_device ON envelopes (account_id, device_id, seq);
CREATE INDEX envelopes_by_expiry ON envelopes (expires_at);
