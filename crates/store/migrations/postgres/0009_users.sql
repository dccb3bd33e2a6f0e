-- PostgreSQL migration 9 (users): the schema of ../sqlite/0009_users.sql in PostgreSQL's types.

-- Local users of the web dashboard and their browser sessions (medsec_auth::users).

-- Passwords are kept only as Argon2id PHC strings. Users are never deleted, only disabled:
-- the audit log names them. `disabled` stays a 0/1 integer as on SQLite. Every change to a
-- user's counters or password takes the row's lock first (SELECT ... FOR UPDATE or UPDATE),
-- which is what serialises replicas where SQLite had its single writer.
CREATE TABLE users (
    username        TEXT PRIMARY KEY CHECK (length(username) BETWEEN 1 AND 64 AND username = lower(username)),
    role            TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'auditor')),
    phc_hash        TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    failed_attempts BIGINT NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    locked_until    BIGINT,
    disabled        BIGINT NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
);

-- A session is found by the SHA-256 of its cookie value; the value itself is never stored, so
-- a copy of this table signs nobody in. The CSRF token is stored as is: the server renders it
-- into the session's pages, and without the cookie it is worth nothing.
CREATE TABLE user_sessions (
    id_sha256  TEXT PRIMARY KEY CHECK (length(id_sha256) = 64),
    username   TEXT NOT NULL REFERENCES users (username),
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL
);

-- Ending all of a user's sessions (password change, disable) and purging expired ones.
CREATE INDEX user_sessions_username ON user_sessions (username);
CREATE INDEX user_sessions_expires_at ON user_sessions (expires_at);
