-- Group messages that arrived before their sender's key (client-core's
-- `HeldGroupMessage`): their envelopes are acknowledged, so they are kept
-- here, still encrypted under the sender key, until the key arrives or
-- they expire.
CREATE TABLE held_group_messages (
    envelope_id BLOB PRIMARY KEY,
    group_id BLOB NOT NULL,
    sender TEXT NOT NULL,
    sender_device INTEGER NOT NULL,
    certified BLOB,
    message BLOB NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX held_group_messages_by_sender
    ON held_group_messages (group_id, sender, sender_device, received_at);
CREATE INDEX held_group_messages_by_time ON held_group_messages (received_at);

-- The sender key of our current chain of a group as each member device
-- ("user.device") was first given it: a device that lost it and asks
-- again gets it at that iteration, so the messages it holds can be read.
-- Forgotten when the chain rotates or restarts.
CREATE TABLE group_given_keys (
    group_id BLOB NOT NULL,
    holder TEXT NOT NULL,
    distribution BLOB NOT NULL,
    given_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, holder)
);
