-- One-time bootstrap credentials for first enrollment over EST.
-- Only the SHA-256 of the secret is kept: the secret is 256 random bits, so a fast hash is
-- enough and lookups stay cheap on the enrollment path.
CREATE TABLE enrollment_tokens (
    secret_sha256 TEXT PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    device_model  TEXT NOT NULL,
    device_serial TEXT NOT NULL,
    profile       TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    used_at       INTEGER,
    used_by_cert  TEXT REFERENCES certs(serial)
);
