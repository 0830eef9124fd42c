-- Where to send a device a content-free wake-up while it is offline.
CREATE TABLE push_endpoints (
    account_id BIGINT NOT NULL,
    device_id BIGINT NOT NULL,
    endpoint TEXT NOT NULL,
    PRIMARY KEY (account_id, device_id),
    FOREIGN KEY (account_id, device_id) REFERENCES devices(account_id, device_id) ON DELETE CASCADE
);
