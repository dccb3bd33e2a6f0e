-- PostgreSQL migration 6 (risk): the schema of ../sqlite/0006_risk.sql in PostgreSQL's types.
-- Risk management: the human-editable documents (trust-relationship inventory and risk register
-- per device model; acceptability policy and threat rules, global) with every version kept.
-- The primary key is what makes an edit against a stale version fail on every replica.

CREATE TABLE risk_documents (
    scope   TEXT NOT NULL,
    kind    TEXT NOT NULL CHECK (kind IN ('inventory', 'register', 'policy', 'rules')),
    version BIGINT NOT NULL,
    body    TEXT NOT NULL,
    sha256  TEXT NOT NULL,
    author  TEXT NOT NULL,
    at      BIGINT NOT NULL,
    PRIMARY KEY (scope, kind, version)
);
