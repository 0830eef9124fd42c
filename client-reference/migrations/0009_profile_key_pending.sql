-- This device's profile key is saved before the server is asked to take
-- its access key; until the server answers it is pending, offered again
-- and not yet sent to anyone.
ALTER TABLE sealed_sender ADD COLUMN profile_key_pending INTEGER NOT NULL DEFAULT 0;
