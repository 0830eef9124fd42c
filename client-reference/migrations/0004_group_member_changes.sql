-- The last explicit change of each member of a group (added or removed,
-- and at which revision), as JSON {username: {"revision": n, "removed": b}}.
-- It decides membership when group updates cross: a removal is never
-- undone by an update that did not explicitly add the member back.
ALTER TABLE groups ADD COLUMN member_changes TEXT NOT NULL DEFAULT '{}';
