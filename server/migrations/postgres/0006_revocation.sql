-- Device management and revocation.
-- Device ids are never reused: each account remembers the last it gave.
ALTER TABLE accounts ADD COLUMN last_device_id BIGINT NOT NULL DEFAULT 0;
UPDATE accounts SET last_device_id =
    COALESCE((SELECT MAX(device_id) FROM devices WHERE devices.account_id = accounts.id), 0);

-- Manager devices link and remove the account's devices: the device that
-- registered the account, and devices linked with a code a manager issued
-- for a manager. Devices that exist already keep what they could do.
ALTER TABLE devices ADD COLUMN manager BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE devices SET manager = TRUE;
ALTER TABLE link_codes ADD COLUMN manager BOOLEAN NOT NULL DEFAULT FALSE;

-- Devices and accounts whose live connections every server process must
-- close (removal, disabling); polled by each process, purged after an hour.
CREATE TABLE revocations (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL,
    device_id BIGINT,
    created_at BIGINT NOT NULL
);
