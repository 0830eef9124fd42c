-- Deleted accounts (`starling-server admin delete`): the account's rows go,
-- and its name waits here until the transparency log has marked the name
-- deleted (crypto/SPEC.md §16), so that the log never keeps claiming the
-- devices of an account that no longer exists.
ALTER TABLE kt_pending ADD COLUMN username TEXT;
