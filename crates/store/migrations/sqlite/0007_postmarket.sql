-- Post-market surveillance: the append-only device event log with its retention horizon,
-- detection rules (every version kept), incidents, CVD reports and advisories (every version
-- kept). Bodies are the JSON of the domain types; the other columns exist to be queried.

-- AUTOINCREMENT so a purge that removes the newest rows never lets `seq` be reused: readers
-- page with `seq > cursor` and would silently skip events that reused an old number.
CREATE TABLE pm_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    device      TEXT NOT NULL,
    model       TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    severity    TEXT NOT NULL,
    at          INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('device', 'syslog', 'server')),
    body        TEXT NOT NULL,
    -- Event ids are chosen by the device and unique per device only.
    UNIQUE (device, event_id)
);
CREATE INDEX pm_events_device ON pm_events (device, seq);
CREATE INDEX pm_events_received ON pm_events (received_at);

-- The retention horizon: events received before it may be deleted, no others. One row,
-- created here, that can be raised but not lowered or removed.
CREATE TABLE pm_retention (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    horizon INTEGER NOT NULL
);
INSERT INTO pm_retention (id, horizon) VALUES (1, -9223372036854775808);

CREATE TRIGGER pm_retention_forward BEFORE UPDATE ON pm_retention
WHEN NEW.horizon < OLD.horizon OR NEW.id != OLD.id
BEGIN
    SELECT RAISE(ABORT, 'the event retention horizon only moves forward');
END;

CREATE TRIGGER pm_retention_keep BEFORE DELETE ON pm_retention
BEGIN
    SELECT RAISE(ABORT, 'the event retention horizon cannot be removed');
END;

-- Events are observations: once stored they are never changed.
CREATE TRIGGER pm_events_no_update BEFORE UPDATE ON pm_events
BEGIN
    SELECT RAISE(ABORT, 'pm_events is append-only: events cannot be changed');
END;

-- Only rows provably older than the horizon may go; written so that a missing horizon
-- (NULL comparison) refuses the delete rather than allowing it.
CREATE TRIGGER pm_events_no_delete BEFORE DELETE ON pm_events
WHEN coalesce(OLD.received_at < (SELECT horizon FROM pm_retention WHERE id = 1), 0) = 0
BEGIN
    SELECT RAISE(ABORT, 'pm_events is append-only: only events received before the retention horizon can be deleted');
END;

-- Detection rules: one global document, every version kept.
CREATE TABLE pm_rules (
    version INTEGER PRIMARY KEY,
    body    TEXT NOT NULL,
    author  TEXT NOT NULL,
    at      INTEGER NOT NULL
);

-- AUTOINCREMENT so an incident number, once handed out and cited in a regulatory report,
-- is never given to another incident.
CREATE TABLE pm_incidents (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    rule       TEXT NOT NULL,
    model      TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('new', 'triage', 'contained', 'eradicated', 'recovered', 'closed')),
    opened_at  INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    body       TEXT NOT NULL
);
-- One open rule-opened incident per rule and model: concurrent detections of the same rule
-- on the same model attach to one incident instead of racing to open two.
CREATE UNIQUE INDEX pm_incidents_open ON pm_incidents (rule, model)
    WHERE status != 'closed' AND rule != 'manual';
CREATE INDEX pm_incidents_status ON pm_incidents (status, id);

CREATE TABLE pm_cvd_reports (
    id          TEXT PRIMARY KEY,
    received_at INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('received', 'acknowledged', 'triaged', 'remediated', 'disclosed', 'rejected')),
    version     INTEGER NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX pm_cvd_reports_received ON pm_cvd_reports (received_at);

-- Named pm_ because `advisories` (0004) holds imported third-party vulnerability advisories;
-- these are the manufacturer's own.
CREATE TABLE pm_advisories (
    id      TEXT NOT NULL,
    version INTEGER NOT NULL,
    body    TEXT NOT NULL,
    author  TEXT NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (id, version)
);
