-- A link code dies with the device that issued it: a removed (stolen)
-- manager cannot use a code it asked for before its removal.
ALTER TABLE link_codes ADD COLUMN issuer_device_id BIGINT;
