-- Cross-signed device links (crypto/SPEC.md §2.5). A link code keeps the
-- issuing device's grant of the link key; a device linked with it keeps
-- its certificate (the grant and the new device's endorsement), served
-- beside its keys. Both are public: signatures a client checks.
ALTER TABLE link_codes ADD COLUMN link_grant BYTEA;
ALTER TABLE devices ADD COLUMN certificate BYTEA;
