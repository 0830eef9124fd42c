-- Envelope times at rest say only the hour a send was accepted: what
-- expiry needs (created_at + messages.ttl_days), and no more. The separate
-- expiry column, a millisecond time of its own, goes.
DROP INDEX envelopes_by_expiry;
ALTER TABLE envelopes DROP COLUMN expires_at;
UPDATE envelopes SET created_at = created_at - (created_at % 3600000);
CREATE INDEX envelopes_by_age ON envelopes (created_at);
