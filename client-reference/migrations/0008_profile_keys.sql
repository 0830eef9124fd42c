-- Unidentified delivery: this account's profile key (contacts derive its
-- access key from it) and each contact's, as they last sent it.
ALTER TABLE sealed_sender ADD COLUMN profile_key BLOB;
ALTER TABLE contacts ADD COLUMN profile_key BLOB;
