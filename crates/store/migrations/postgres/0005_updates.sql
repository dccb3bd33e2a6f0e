-- PostgreSQL migration 5 (updates): the schema of ../sqlite/0005_updates.sql in PostgreSQL's types.
-- Secure updates: releases known to the director, rollouts, device tags and instruction
-- counters, and device update reports (history).

CREATE TABLE releases (
    model            TEXT NOT NULL,
    version          TEXT NOT NULL,
    target           TEXT NOT NULL UNIQUE,
    length           BIGINT NOT NULL,
    sha256           TEXT NOT NULL,
    security_version BIGINT NOT NULL,
    hardware_id      TEXT NOT NULL,
    published_at     BIGINT NOT NULL,
    PRIMARY KEY (model, version)
);

-- A rollout row is changed only under its row lock, and only by one legal step from the state
-- stored (see pg_updates.rs), so racing replicas can neither repeat nor lose a transition.
CREATE TABLE rollouts (
    id         TEXT PRIMARY KEY,
    model      TEXT NOT NULL,
    target     TEXT NOT NULL REFERENCES releases (target),
    state      TEXT NOT NULL CHECK (state IN ('active', 'paused', 'halted', 'aborted', 'completed')),
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL
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
    counter BIGINT NOT NULL,
    PRIMARY KEY (model, serial)
);

CREATE TABLE update_reports (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rollout TEXT NOT NULL REFERENCES rollouts (id),
    device  TEXT NOT NULL,
    status  TEXT NOT NULL CHECK (status IN ('downloading', 'installed', 'confirmed', 'failed', 'reverted')),
    detail  TEXT NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX update_reports_rollout ON update_reports (rollout, device, id);
