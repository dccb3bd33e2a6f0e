-- Secure updates: releases known to the director, rollouts, device tags and instruction
-- counters, and device update reports (history).

CREATE TABLE releases (
    model            TEXT NOT NULL,
    version          TEXT NOT NULL,
    target           TEXT NOT NULL UNIQUE,
    length           INTEGER NOT NULL,
    sha256           TEXT NOT NULL,
    security_version INTEGER NOT NULL,
    hardware_id      TEXT NOT NULL,
    published_at     INTEGER NOT NULL,
    PRIMARY KEY (model, version)
);

CREATE TABLE rollouts (
    id         TEXT PRIMARY KEY,
    model      TEXT NOT NULL,
    target     TEXT NOT NULL REFERENCES releases (target),
    state      TEXT NOT NULL CHECK (state IN ('active', 'paused', 'halted', 'aborted', 'completed')),
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX rollouts_model ON rollouts (model, created_at);

CREATE TABLE device_tags (
    model  TEXT NOT NULL,
    serial TEXT NOT NULL,
    tag    TEXT NOT NULL,
    PRIMARY KEY (model, serial, tag),
    FOREIGN KEY (model, serial) REFERENCES devices (model, serial)
);

CREATE TABLE director_counters (
    model   TEXT NOT NULL,
    serial  TEXT NOT NULL,
    counter INTEGER NOT NULL,
    PRIMARY KEY (model, serial)
);

CREATE TABLE update_reports (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    rollout TEXT NOT NULL REFERENCES rollouts (id),
    device  TEXT NOT NULL,
    status  TEXT NOT NULL CHECK (status IN ('downloading', 'installed', 'confirmed', 'failed', 'reverted')),
    detail  TEXT NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX update_reports_rollout ON update_reports (rollout, device, id);
