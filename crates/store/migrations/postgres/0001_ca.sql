-- PostgreSQL migration 1 (ca): the schema of ../sqlite/0001_ca.sql in PostgreSQL's types.
-- Device-identity CA: CAs, profiles, devices, certificates, CRLs, and the audit log.
-- Times are Unix seconds (UTC) unless the column name says otherwise. Table and column names
-- are SQLite's, so that later migrations (fleet's triggers) read the same on both back ends.

CREATE TABLE cas (
    name              TEXT PRIMARY KEY,
    role              TEXT NOT NULL CHECK (role IN ('root', 'issuing')),
    parent            TEXT REFERENCES cas(name),
    serial            TEXT NOT NULL,
    cert_der          BYTEA NOT NULL,
    key_ref           TEXT,
    key_algorithm     TEXT NOT NULL,
    crl_url           TEXT,
    ocsp_url          TEXT,
    crl_validity_secs BIGINT NOT NULL,
    not_after         BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    crl_number        BIGINT NOT NULL DEFAULT 0,
    revoked_reason    TEXT,
    revoked_at        BIGINT,
    invalidity_date   BIGINT,
    CHECK ((role = 'root') = (parent IS NULL))
);

CREATE TABLE profiles (
    name       TEXT PRIMARY KEY,
    body       TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE devices (
    model      TEXT NOT NULL,
    serial     TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('active', 'retired')),
    created_at BIGINT NOT NULL,
    retired_at BIGINT,
    PRIMARY KEY (model, serial)
);

-- The primary key is what makes serial numbers unique across every replica: never rely on
-- randomness alone, and never on a check in one process's memory.
CREATE TABLE certs (
    serial          TEXT PRIMARY KEY,
    issuer          TEXT NOT NULL REFERENCES cas(name),
    device_model    TEXT NOT NULL,
    device_serial   TEXT NOT NULL,
    profile         TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('issue', 'renew', 'rekey')),
    subject         TEXT NOT NULL,
    key_algorithm   TEXT NOT NULL,
    spki_sha256     TEXT NOT NULL,
    not_before      BIGINT NOT NULL,
    not_after       BIGINT NOT NULL,
    issued_at       BIGINT NOT NULL,
    replaces        TEXT REFERENCES certs(serial),
    revoke_after    BIGINT,
    revoked_reason  TEXT,
    revoked_at      BIGINT,
    invalidity_date BIGINT,
    der             BYTEA NOT NULL,
    FOREIGN KEY (device_model, device_serial) REFERENCES devices(model, serial)
);
CREATE INDEX certs_device ON certs(device_model, device_serial);
CREATE INDEX certs_issuer_revoked ON certs(issuer) WHERE revoked_at IS NOT NULL;
CREATE INDEX certs_unrevoked_not_after ON certs(not_after) WHERE revoked_at IS NULL;
CREATE INDEX certs_due ON certs(revoke_after) WHERE revoke_after IS NOT NULL AND revoked_at IS NULL;

CREATE TABLE crls (
    ca          TEXT NOT NULL REFERENCES cas(name),
    number      BIGINT NOT NULL,
    this_update BIGINT NOT NULL,
    next_update BIGINT NOT NULL,
    der         BYTEA NOT NULL,
    PRIMARY KEY (ca, number)
);

-- The hash-chained audit log. Appends from every replica are serialised by an advisory lock
-- held to the end of the appending transaction (see pg.rs), so the chain never forks.
CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY,
    at_micros BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    details   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);

-- The newest entry's sequence and hash, updated with every append, so that removing the
-- newest entries is detected too.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
