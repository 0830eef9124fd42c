-- The local store of one Starling home. The whole file is encrypted by
-- SQLCipher; these tables hold secrets (keys, sessions) and history.

CREATE TABLE account (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    server_url TEXT NOT NULL,
    ca_fingerprint TEXT,
    username TEXT NOT NULL,
    device_id INTEGER NOT NULL,
    credential TEXT NOT NULL,
    identity BLOB NOT NULL,
    prekeys BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

-- Double Ratchet sessions, one row per peer device (PeerSessions bytes).
CREATE TABLE sessions (
    username TEXT NOT NULL,
    device_id INTEGER NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (username, device_id)
);

-- The identity key seen for each device of each account (trust on first use).
CREATE TABLE identities (
    username TEXT NOT NULL,
    device_id INTEGER NOT NULL,
    identity_key BLOB NOT NULL,
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (username, device_id)
);

CREATE TABLE contacts (
    username TEXT PRIMARY KEY,
    verified INTEGER NOT NULL DEFAULT 0,
    -- Set when a device's key changed or a device was added after trust was
    -- established; cleared by `verify`.
    identity_changed INTEGER NOT NULL DEFAULT 0,
    expire_seconds INTEGER NOT NULL DEFAULT 0,
    -- Set once any key of this account was trusted.
    known INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE groups (
    group_id BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    members TEXT NOT NULL,            -- JSON array of usernames, self included
    revision INTEGER NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    expire_seconds INTEGER NOT NULL DEFAULT 0,
    outbound BLOB,                    -- our OutboundGroupSession
    distributed TEXT NOT NULL DEFAULT '[]'  -- JSON ["user.device"] holding our current sender key
);

CREATE TABLE group_inbound (
    group_id BLOB NOT NULL,
    username TEXT NOT NULL,
    device_id INTEGER NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (group_id, username, device_id)
);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    message_id BLOB NOT NULL UNIQUE,
    conversation TEXT NOT NULL,       -- "@user" or "#<group id hex>"
    sender TEXT NOT NULL,
    sender_device INTEGER NOT NULL,
    outgoing INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,               -- what a person reads; searched
    content BLOB NOT NULL,            -- the decrypted Content, kept whole
    sent_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    expires_at INTEGER,
    edited INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    read INTEGER NOT NULL DEFAULT 0,  -- a read receipt arrived (outgoing)
    reactions TEXT NOT NULL DEFAULT '{}', -- JSON {username: emoji}
    attachment_file TEXT              -- encrypted blob in the home's attachments folder
);
CREATE INDEX messages_conversation ON messages (conversation, id);
CREATE INDEX messages_expiry ON messages (expires_at) WHERE expires_at IS NOT NULL;

CREATE VIRTUAL TABLE messages_fts USING fts5(body, content='messages', content_rowid='id');
CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;
CREATE TRIGGER messages_au AFTER UPDATE OF body ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
    INSERT INTO messages_fts(rowid, body) VALUES (new.id, new.body);
END;

-- Envelope ids already processed, so a redelivery is shown once.
CREATE TABLE seen_envelopes (
    envelope_id BLOB PRIMARY KEY,
    seen_at INTEGER NOT NULL
);

-- Warnings a person must see until they act (identity changes).
CREATE TABLE warnings (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
