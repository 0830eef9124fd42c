-- The devices this account already had when this home was registered or
-- linked. Any other device of our own account that appears later is
-- announced, whatever id the server gave it; a removed device leaves this
-- list, so its id coming back is announced too.
CREATE TABLE setup_devices (
    device_id INTEGER PRIMARY KEY
);

-- Homes created before this list existed: the own devices already seen.
INSERT INTO setup_devices (device_id)
SELECT i.device_id FROM identities i JOIN account a ON i.username = a.username;
