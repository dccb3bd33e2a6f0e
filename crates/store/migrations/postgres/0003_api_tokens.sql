-- PostgreSQL migration 3 (api_tokens): the schema of ../sqlite/0003_api_tokens.sql in PostgreSQL's types.

-- API tokens: the secret is never stored, only its Argon2id PHC string. `revoked` stays a 0/1
-- integer as on SQLite, so the code reading it is the same on both back ends.
CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'auditor')),
    phc_hash   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked    BIGINT NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
);
