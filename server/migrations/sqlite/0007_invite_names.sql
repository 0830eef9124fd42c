-- An invite may be bound to the one username it registers (empty: any
-- name not reserved by the directory).
ALTER TABLE invites ADD COLUMN username TEXT;
