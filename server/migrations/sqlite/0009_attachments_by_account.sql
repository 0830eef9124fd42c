-- An account's attachment quota sums the sizes of its unexpired
-- attachments at every creation.
CREATE INDEX attachments_by_account ON attachments (account_id, expires_at);
