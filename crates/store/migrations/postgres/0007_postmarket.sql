-- PostgreSQL migration 7 (postmarket): the schema of ../sqlite/0007_postmarket.sql in PostgreSQL's types.
-- Post-market surveillance: the append-only device event log with its retention horizon,
-- detection rules (every version kept), incidents, CVD reports and advisories (every version
-- kept). Bodies are the JSON of the domain types; the other columns exist to be queried.

-- A sequence never hands a number out twice, so a purge that removes the newest rows never
-- lets `seq` be reused: readers page with `seq > cursor` and would silently skip events that
-- reused an old number. The store draws numbers itself (nextval) so that they follow the
-- caller's order while rows are inserted in key order (see pg_postmarket.rs).
CREATE SEQUENCE pm_events_seq AS BIGINT;
CREATE TABLE pm_events (
    seq         BIGINT PRIMARY KEY DEFAULT nextval('pm_events_seq'),
    device      TEXT NOT NULL,
    model       TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    severity    TEXT NOT NULL,
    at          BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('device', 'syslog', 'server')),
    body        TEXT NOT NULL,
    -- Event ids are chosen by the device and unique per device only.
    UNIQUE (device, event_id)
);
ALTER SEQUENCE pm_events_seq OWNED BY pm_events.seq;
CREATE INDEX pm_events_device ON pm_events (device, seq);
CREATE INDEX pm_events_received ON pm_events (received_at);

-- The retention horizon: events received before it may be deleted, no others. One row,
-- created here, that can be raised but not lowered or removed.
CREATE TABLE pm_retention (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    horizon BIGINT NOT NULL
);
INSERT INTO pm_retention (id, horizon) VALUES (1, -9223372036854775808);

CREATE FUNCTION pm_retention_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.horizon < OLD.horizon OR NEW.id <> OLD.id THEN
        RAISE EXCEPTION 'the event retention horizon only moves forward';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER pm_retention_forward BEFORE UPDATE ON pm_retention
    FOR EACH ROW EXECUTE FUNCTION pm_retention_forward();

CREATE FUNCTION pm_retention_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event retention horizon cannot be removed';
END
$$;
CREATE TRIGGER pm_retention_keep BEFORE DELETE ON pm_retention
    FOR EACH ROW EXECUTE FUNCTION pm_retention_keep();
-- TRUNCATE fires no row triggers: it gets a statement trigger of its own.
CREATE TRIGGER pm_retention_keep_truncate BEFORE TRUNCATE ON pm_retention
    FOR EACH STATEMENT EXECUTE FUNCTION pm_retention_keep();

-- Events are observations: once stored they are never changed.
CREATE FUNCTION pm_events_no_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'pm_events is append-only: events cannot be changed';
END
$$;
CREATE TRIGGER pm_events_no_update BEFORE UPDATE ON pm_events
    FOR EACH ROW EXECUTE FUNCTION pm_events_no_update();

-- Only rows provably older than the horizon may go; written so that a missing horizon
-- (NULL comparison) refuses the delete rather than allowing it.
CREATE FUNCTION pm_events_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(OLD.received_at < (SELECT horizon FROM pm_retention WHERE id = 1), false) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'pm_events is append-only: only events received before the retention horizon can be deleted';
END
$$;
CREATE TRIGGER pm_events_no_delete BEFORE DELETE ON pm_events
    FOR EACH ROW EXECUTE FUNCTION pm_events_no_delete();

CREATE FUNCTION pm_events_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'pm_events is append-only: it cannot be truncated';
END
$$;
CREATE TRIGGER pm_events_no_truncate BEFORE TRUNCATE ON pm_events
    FOR EACH STATEMENT EXECUTE FUNCTION pm_events_no_truncate();

-- Detection rules: one global document, every version kept. The primary key is what refuses
-- the second of two replicas writing the same next version.
CREATE TABLE pm_rules (
    version BIGINT PRIMARY KEY,
    body    TEXT NOT NULL,
    author  TEXT NOT NULL,
    at      BIGINT NOT NULL
);

-- An incident number, once handed out and cited in a regulatory report, is never given to
-- another incident. The last number handed out lives in one counter row rather than a
-- sequence: it is taken under the row's lock inside the inserting transaction, so an insert
-- that is refused (an incident already open) gives its number back, like SQLite's, and
-- numbers stay dense.
CREATE TABLE pm_incident_ids (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last BIGINT NOT NULL
);
INSERT INTO pm_incident_ids (id, last) VALUES (1, 0);

CREATE TABLE pm_incidents (
    id         BIGINT PRIMARY KEY,
    rule       TEXT NOT NULL,
    model      TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('new', 'triage', 'contained', 'eradicated', 'recovered', 'closed')),
    opened_at  BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version    BIGINT NOT NULL,
    body       TEXT NOT NULL
);
-- One open rule-opened incident per rule and model: concurrent detections of the same rule
-- on the same model (on any replica) attach to one incident instead of racing to open two.
CREATE UNIQUE INDEX pm_incidents_open ON pm_incidents (rule, model)
    WHERE status <> 'closed' AND rule <> 'manual';
CREATE INDEX pm_incidents_status ON pm_incidents (status, id);

-- `arrival` stands in for SQLite's rowid: it breaks ties between reports received in the
-- same second, in arrival order.
CREATE TABLE pm_cvd_reports (
    id          TEXT PRIMARY KEY,
    received_at BIGINT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('received', 'acknowledged', 'triaged', 'remediated', 'disclosed', 'rejected')),
    version     BIGINT NOT NULL,
    body        TEXT NOT NULL,
    arrival     BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX pm_cvd_reports_received ON pm_cvd_reports (received_at, arrival);

-- Named pm_ because `advisories` (0004) holds imported third-party vulnerability advisories;
-- these are the manufacturer's own.
CREATE TABLE pm_advisories (
    id      TEXT NOT NULL,
    version BIGINT NOT NULL,
    body    TEXT NOT NULL,
    author  TEXT NOT NULL,
    at      BIGINT NOT NULL,
    PRIMARY KEY (id, version)
);
