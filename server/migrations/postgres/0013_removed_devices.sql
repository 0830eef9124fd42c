-- Devices removed from their account, kept so that the removed device
-- itself (and only it: it must present its old credential) is told why
-- it is refused. Not when: nothing needs it. A device id linked again is a new device; its own row
-- in `devices` is found first.
CREATE TABLE removed_devices (
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    device_id BIGINT NOT NULL,
    credential_hash BYTEA NOT NULL,
    PRIMARY KEY (account_id, device_id)
);
