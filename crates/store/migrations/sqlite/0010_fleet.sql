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
-- the clock and is derived at query time from not_after.
--
-- Derived data, kept because joining devices, device_firmware and a million certificates per
-- request costs hundreds of milliseconds at 100,000 devices (the summary would read every
-- certificate; a status filter or the risk view needs two row lookups per device), while one
-- row per device answers every fleet query from a single table. The triggers below recompute
-- a device's row from the base tables in the transaction of each write that can change it:
-- devices (insert; status change on retirement), device_firmware (insert or update: firmware
-- reports) and certs (insert: issuance, renewal, rekey; revoked_at or not_after change:
-- revocation, retirement; delete).
CREATE TABLE fleet_devices (
    model       TEXT NOT NULL,
    serial      TEXT NOT NULL,
    retired     INTEGER NOT NULL CHECK (retired IN (0, 1)),
    version     TEXT,
    cert_serial TEXT,
    not_after   INTEGER,
    revoked     INTEGER CHECK (revoked IN (0, 1)),
    PRIMARY KEY (model, serial)
) WITHOUT ROWID;
-- Fleet page filtered by firmware: one version's devices in (model, serial) order.
CREATE INDEX fleet_devices_version ON fleet_devices (version, model, serial);
-- Summary: devices per model and firmware, in the field or retired.
CREATE INDEX fleet_devices_counts ON fleet_devices (retired, model, version);
-- Summary certificate counts and the risk view's expiring devices, without reading the table.
CREATE INDEX fleet_devices_expiry ON fleet_devices (retired, revoked, not_after, version, cert_serial);

-- A new device's row is computed from the base tables (in practice it has no firmware or
-- certificate yet: the issuance that creates it inserts the certificate next); every later
-- change patches the columns it can affect.
CREATE TRIGGER fleet_devices_device_insert AFTER INSERT ON devices
BEGIN
    INSERT INTO fleet_devices (model, serial, retired, version, cert_serial, not_after, revoked)
    SELECT d.model, d.serial, d.status = 'retired', f.version, c.serial, c.not_after,
    CASE WHEN c.serial IS NOT NULL THEN c.revoked_at IS NOT NULL END
    FROM devices d
    LEFT JOIN device_firmware f ON f.model = d.model AND f.serial = d.serial
    LEFT JOIN certs c ON c.serial = (
        SELECT x.serial FROM certs x WHERE x.device_model = d.model AND x.device_serial = d.serial
        ORDER BY x.revoked_at IS NULL DESC, x.not_after DESC, x.serial DESC LIMIT 1)
    WHERE d.model = NEW.model AND d.serial = NEW.serial
    ON CONFLICT (model, serial) DO UPDATE SET retired = excluded.retired, version = excluded.version,
        cert_serial = excluded.cert_serial, not_after = excluded.not_after, revoked = excluded.revoked;
END;

CREATE TRIGGER fleet_devices_device_status AFTER UPDATE OF status ON devices
BEGIN
    UPDATE fleet_devices SET retired = NEW.status = 'retired'
    WHERE model = NEW.model AND serial = NEW.serial;
END;

CREATE TRIGGER fleet_devices_device_delete AFTER DELETE ON devices
BEGIN
    DELETE FROM fleet_devices WHERE model = OLD.model AND serial = OLD.serial;
END;

CREATE TRIGGER fleet_devices_firmware_insert AFTER INSERT ON device_firmware
BEGIN
    UPDATE fleet_devices SET version = NEW.version WHERE model = NEW.model AND serial = NEW.serial;
END;

CREATE TRIGGER fleet_devices_firmware_update AFTER UPDATE OF version ON device_firmware
BEGIN
    UPDATE fleet_devices SET version = NEW.version WHERE model = NEW.model AND serial = NEW.serial;
END;

CREATE TRIGGER fleet_devices_firmware_delete AFTER DELETE ON device_firmware
BEGIN
    UPDATE fleet_devices SET version = NULL WHERE model = OLD.model AND serial = OLD.serial;
END;

-- Issuance is the hot write path: a new certificate can only add a candidate, so it is compared
-- with the current one (the rule's order as a row value) instead of re-reading the device's
-- certificates.
CREATE TRIGGER fleet_devices_cert_insert AFTER INSERT ON certs
BEGIN
    UPDATE fleet_devices
    SET cert_serial = NEW.serial, not_after = NEW.not_after, revoked = NEW.revoked_at IS NOT NULL
    WHERE model = NEW.device_model AND serial = NEW.device_serial
      AND (cert_serial IS NULL
           OR (NEW.revoked_at IS NULL, NEW.not_after, NEW.serial) > (revoked = 0, not_after, cert_serial));
END;

-- Revocation (and retirement, one row per certificate): when the current certificate changed,
-- the device's certificates decide again; any other one can only take over by now ranking
-- above the current one.
CREATE TRIGGER fleet_devices_cert_update AFTER UPDATE OF revoked_at, not_after ON certs
BEGIN
    UPDATE fleet_devices SET (cert_serial, not_after, revoked) = (
        SELECT x.serial, x.not_after, x.revoked_at IS NOT NULL FROM certs x
        WHERE x.device_model = NEW.device_model AND x.device_serial = NEW.device_serial
        ORDER BY x.revoked_at IS NULL DESC, x.not_after DESC, x.serial DESC LIMIT 1)
    WHERE model = NEW.device_model AND serial = NEW.device_serial AND cert_serial = NEW.serial;
    UPDATE fleet_devices
    SET cert_serial = NEW.serial, not_after = NEW.not_after, revoked = NEW.revoked_at IS NOT NULL
    WHERE model = NEW.device_model AND serial = NEW.device_serial AND cert_serial IS NOT NEW.serial
      AND (cert_serial IS NULL
           OR (NEW.revoked_at IS NULL, NEW.not_after, NEW.serial) > (revoked = 0, not_after, cert_serial));
END;

CREATE TRIGGER fleet_devices_cert_delete AFTER DELETE ON certs
BEGIN
    UPDATE fleet_devices SET (cert_serial, not_after, revoked) = (
        SELECT x.serial, x.not_after, x.revoked_at IS NOT NULL FROM certs x
        WHERE x.device_model = OLD.device_model AND x.device_serial = OLD.device_serial
        ORDER BY x.revoked_at IS NULL DESC, x.not_after DESC, x.serial DESC LIMIT 1)
    WHERE model = OLD.device_model AND serial = OLD.device_serial;
END;

-- Databases that already hold devices.
INSERT INTO fleet_devices (model, serial, retired, version, cert_serial, not_after, revoked)
SELECT d.model, d.serial, d.status = 'retired', f.version, c.serial, c.not_after,
    CASE WHEN c.serial IS NOT NULL THEN c.revoked_at IS NOT NULL END
FROM devices d
LEFT JOIN device_firmware f ON f.model = d.model AND f.serial = d.serial
LEFT JOIN certs c ON c.serial = (
    SELECT x.serial FROM certs x WHERE x.device_model = d.model AND x.device_serial = d.serial
    ORDER BY x.revoked_at IS NULL DESC, x.not_after DESC, x.serial DESC LIMIT 1);
