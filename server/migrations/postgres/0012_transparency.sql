-- Key transparency (crypto/SPEC.md §16). akd's own records: the tree's
-- summary, its nodes (in the server's node codec), and every version of
-- every label's value; then what the server adds: the device lists the
-- values commit to, each epoch's signed root, the append-only proof from
-- the epoch before, and the accounts whose device list changed since the
-- last epoch.
CREATE TABLE kt_azks (
    id SMALLINT PRIMARY KEY,
    latest_epoch BIGINT NOT NULL,
    num_nodes BIGINT NOT NULL
);

CREATE TABLE kt_nodes (
    node_key BYTEA PRIMARY KEY,
    node BYTEA NOT NULL
);

CREATE TABLE kt_values (
    label BYTEA NOT NULL,
    epoch BIGINT NOT NULL,
    version BIGINT NOT NULL,
    node_label BYTEA NOT NULL,
    value BYTEA NOT NULL,
    PRIMARY KEY (label, epoch)
);
CREATE INDEX kt_values_by_version ON kt_values (label, version);

-- The device list each value commits to, as the publisher made it, so
-- that a fetch serves exactly the list its proof is of.
CREATE TABLE kt_device_lists (
    label BYTEA NOT NULL,
    epoch BIGINT NOT NULL,
    devices BYTEA NOT NULL,
    PRIMARY KEY (label, epoch)
);

CREATE TABLE kt_roots (
    epoch BIGINT PRIMARY KEY,
    signed_root BYTEA NOT NULL
);

CREATE TABLE kt_audit (
    epoch BIGINT PRIMARY KEY,
    proof BYTEA NOT NULL
);

-- One row per account to publish; `seq` grows with every change, so the
-- publisher deletes only the rows it read (a change while it publishes
-- stays for the next epoch).
CREATE TABLE kt_pending (
    account_id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL
);

-- Every account already registered goes into the first epoch.
INSERT INTO kt_pending (account_id, seq) SELECT id, 1 FROM accounts;
