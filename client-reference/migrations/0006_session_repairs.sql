-- When a peer's authenticated repair request last made this device start a
-- fresh session with one of its devices: repairs are honoured at most once
-- an hour per device, across restarts.
CREATE TABLE session_repairs (
    username TEXT NOT NULL,
    device_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (username, device_id)
);
