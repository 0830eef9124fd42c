-- Decrypted envelopes whose content is not yet applied. A row is written in
-- the same transaction as the session state that decrypted it, and removed
-- in the same transaction that marks the envelope processed, so a crash at
-- any point between decrypting and acknowledging loses nothing: the content
-- is applied (idempotently) on the next start.
CREATE TABLE inbox (
    envelope_id BLOB PRIMARY KEY,
    sender TEXT NOT NULL,
    sender_device INTEGER NOT NULL,
    pairwise INTEGER NOT NULL,
    identity_changed INTEGER NOT NULL,
    content BLOB NOT NULL
);
