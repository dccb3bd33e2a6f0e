-- PostgreSQL migration 2 (enrollment_tokens): the schema of ../sqlite/0002_enrollment_tokens.sql in PostgreSQL's types.

-- One-time bootstrap credentials for first enrollment over EST.
-- Only the SHA-256 of the secret is kept: the secret is 256 random bits, so a fast hash is
-- enough and lookups stay cheap on the enrollment path. A token is spent by a conditional
-- UPDATE (`used_at IS NULL`), which PostgreSQL re-checks after waiting for a concurrent
-- spender's row lock: of two replicas racing, exactly one spends it.
CREATE TABLE enrollment_tokens (
    secret_sha256 TEXT PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    device_model  TEXT NOT NULL,
    device_serial TEXT NOT NULL,
    profile       TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT,
    used_by_cert  TEXT REFERENCES certs(serial)
);
