-- Which held identity keys may vouch for a new device of their account
-- (crypto/SPEC.md §2.5): a key taken without a warning (a first contact,
-- a device present when this home was set up, a device linked by one
-- that may vouch) or verified since. A key that raised a warning may not
-- until its contact is verified again: the server cannot use a device it
-- planted once to vouch for the next ones. Keys recorded before this
-- column were taken as the rules then stood.
ALTER TABLE identities ADD COLUMN may_vouch INTEGER NOT NULL DEFAULT 1;
