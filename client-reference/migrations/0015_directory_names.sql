-- The organisation's directory as last fetched: the display names shown
-- next to usernames. The whole directory is fetched at once (never one
-- name at a time, which would tell the server whose messages arrive).
-- Display names are labels the server publishes; identity stays the
-- username and its keys.
CREATE TABLE directory_names (
    username TEXT PRIMARY KEY,
    display_name TEXT NOT NULL
);

CREATE TABLE directory_fetched (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    fetched_at INTEGER NOT NULL
);
