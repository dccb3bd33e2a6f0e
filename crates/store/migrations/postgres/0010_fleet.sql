-- PostgreSQL migration 10 (fleet): the schema of ../sqlite/0010_fleet.sql in PostgreSQL's types.
-- Fleet read model (medsec-fleet): the indexes the dashboard's fleet, PKI and risk pages need,
-- and one summary row per device, kept by triggers.

-- PKI page filtered by issuer: one issuer's certificates in serial order.
CREATE INDEX certs_issuer_serial ON certs (issuer, serial);
-- PKI page filtered by an expiring window: the unrevoked certificates in it with the columns
-- the filter and the order need, so only the rows shown are read from the table.
CREATE INDEX certs_unrevoked_expiry ON certs (not_after, issuer, serial) WHERE revoked_at IS NULL;

-- "Is this finding open": the newest decision for (firmware, vulnerability).
CREATE INDEX vex_decisions_key ON vex_decisions (model, version, vuln_id, id);

-- One row per device with what every fleet page filters and counts on: retired or not, the
-- firmware it runs, and its current certificate (newest unrevoked by not_after, else newest;
-- ties: greatest serial; `revoked` 1 when that certificate is revoked). Validity depends on
-- the clock and is derived at query time from not_after. 0/1 integers as in SQLite, so both
-- back ends read the row alike.
--
-- Derived data, kept because joining devices, device_firmware and a million certificates per
-- request costs hundreds of milliseconds at 100,000 devices, while one row per device answers
-- every fleet query from a single table.
CREATE TABLE fleet_devices (
    model       TEXT NOT NULL,
    serial      TEXT NOT NULL,
    retired     BIGINT NOT NULL CHECK (retired IN (0, 1)),
    version     TEXT,
    cert_serial TEXT,
    not_after   BIGINT,
    revoked     BIGINT CHECK (revoked IN (0, 1)),
    PRIMARY KEY (model, serial)
);
-- Fleet page filtered by firmware: one version's devices in (model, serial) order.
CREATE INDEX fleet_devices_version ON fleet_devices (version, model, serial);
-- Summary: devices per model and firmware, in the field or retired.
CREATE INDEX fleet_devices_counts ON fleet_devices (retired, model, version);
-- Summary certificate counts and the risk view's expiring devices, without reading the table.
CREATE INDEX fleet_devices_expiry ON fleet_devices (retired, revoked, not_after, version, cert_serial);

-- Recomputes one device's row from the base tables (or removes it with the device).
--
-- Unlike SQLite, where one writer at a time patches the row, several replicas change a
-- device's certificates at once (an issuance here, a revocation there), each in a transaction
-- that cannot see the other's uncommitted rows. So the row is recomputed whole, and only
-- after taking its lock: whoever held the lock has committed by then, and the statement after
-- the lock takes a fresh snapshot that sees its rows; whoever takes it next will see ours.
CREATE FUNCTION fleet_devices_refresh(m TEXT, s TEXT) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM fleet_devices WHERE model = m AND serial = s FOR UPDATE;
    IF NOT EXISTS (SELECT 1 FROM devices WHERE model = m AND serial = s) THEN
        DELETE FROM fleet_devices WHERE model = m AND serial = s;
        RETURN;
    END IF;
    INSERT INTO fleet_devices (model, serial, retired, version, cert_serial, not_after, revoked)
    SELECT d.model, d.serial, (d.status = 'retired')::int, f.version, c.serial, c.not_after,
        CASE WHEN c.serial IS NOT NULL THEN (c.revoked_at IS NOT NULL)::int END
    FROM devices d
    LEFT JOIN device_firmware f ON f.model = d.model AND f.serial = d.serial
    LEFT JOIN certs c ON c.serial = (
        SELECT x.serial FROM certs x WHERE x.device_model = d.model AND x.device_serial = d.serial
        ORDER BY x.revoked_at IS NULL DESC, x.not_after DESC, x.serial DESC LIMIT 1)
    WHERE d.model = m AND d.serial = s
    ON CONFLICT (model, serial) DO UPDATE SET retired = excluded.retired, version = excluded.version,
        cert_serial = excluded.cert_serial, not_after = excluded.not_after, revoked = excluded.revoked;
END
$$;

-- The triggers are deferred to commit: a transaction then takes device rows' locks after every
-- lock its own statements took on certs and devices, in the same place whatever it did. Taken
-- as statements ran, a renewal (certificate insert, then the old one's row) and a revocation
-- of that old certificate (its row, then the device's) would lock in opposite orders and
-- deadlock.
-- A row that moved to another device (never done, but possible) refreshes both devices.
CREATE FUNCTION fleet_devices_device_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM fleet_devices_refresh(NEW.model, NEW.serial);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM fleet_devices_refresh(OLD.model, OLD.serial);
    ELSE
        PERFORM fleet_devices_refresh(OLD.model, OLD.serial);
        IF (NEW.model, NEW.serial) IS DISTINCT FROM (OLD.model, OLD.serial) THEN
            PERFORM fleet_devices_refresh(NEW.model, NEW.serial);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION fleet_devices_cert_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM fleet_devices_refresh(NEW.device_model, NEW.device_serial);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM fleet_devices_refresh(OLD.device_model, OLD.device_serial);
    ELSE
        PERFORM fleet_devices_refresh(OLD.device_model, OLD.device_serial);
        IF (NEW.device_model, NEW.device_serial)
            IS DISTINCT FROM (OLD.device_model, OLD.device_serial) THEN
            PERFORM fleet_devices_refresh(NEW.device_model, NEW.device_serial);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

-- devices: insert (issuance), status change (retirement), delete.
CREATE CONSTRAINT TRIGGER fleet_devices_device AFTER INSERT OR DELETE OR UPDATE OF status, model, serial
    ON devices DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION fleet_devices_device_changed();
-- device_firmware: firmware reports (insert or update), delete.
CREATE CONSTRAINT TRIGGER fleet_devices_firmware AFTER INSERT OR DELETE OR UPDATE OF version, model, serial
    ON device_firmware DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION fleet_devices_device_changed();
-- certs: insert (issuance, renewal, rekey), revoked_at or not_after change (revocation,
-- retirement), delete.
CREATE CONSTRAINT TRIGGER fleet_devices_cert AFTER INSERT OR DELETE OR UPDATE OF revoked_at, not_after, device_model, device_serial
    ON certs DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION fleet_devices_cert_changed();

-- Databases that already hold devices.
INSERT INTO fleet_devices (model, serial, retired, version, cert_serial, not_after, revoked)
SELECT d.model, d.serial, (d.status = 'retired')::int, f.version, c.serial, c.not_after,
    CASE WHEN c.serial IS NOT NULL THEN (c.revoked_at IS NOT NULL)::int END
FROM devices d
LEFT JOIN device_firmware f ON f.model = d.model AND f.serial = d.serial
LEFT JOIN certs c ON c.serial = (
    SELECT x.serial FROM certs x WHERE x.device_model = d.model AND x.device_serial = d.serial
    ORDER BY x.revoked_at IS NULL DESC, x.not_after DESC, x.serial DESC LIMIT 1);
