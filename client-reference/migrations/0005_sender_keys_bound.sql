-- Sender keys are bound to their sender (SenderKeyDistribution version 2,
-- GroupMessage version 3, SPEC.md §7): sessions from unbound distributions
-- no longer load, and other members refuse our unbound ones. Inbound
-- sessions are dropped; our outbound sessions restart, so our next message
-- to each group gives every member device a bound key. A member whose key
-- we dropped sends its new one with its next message (or, if it still
-- counts us as holding it, after our unreadable-message repair).
DELETE FROM group_inbound;
UPDATE groups SET outbound = NULL, distributed = '[]';

-- The chain signing keys each inbound session holds (32 bytes each,
-- concatenated), so a key is taken from one member device only.
ALTER TABLE group_inbound ADD COLUMN signing_keys BLOB NOT NULL DEFAULT x'';
