-- Risk management: the human-editable documents (trust-relationship inventory and risk register
-- per device model; acceptability policy and threat rules, global) with every version kept.

CREATE TABLE risk_documents (
    scope   TEXT NOT NULL,
    kind    TEXT NOT NULL CHECK (kind IN ('inventory', 'register', 'policy', 'rules')),
    version INTEGER NOT NULL,
    body    TEXT NOT NULL,
    sha256  TEXT NOT NULL,
    author  TEXT NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (scope, kind, version)
);
