-- PostgreSQL migration 4 (inventory): the schema of ../sqlite/0004_inventory.sql in PostgreSQL's types.
-- Vulnerability management: firmware versions per device model, their SBOMs, advisories,
-- findings, triage decisions (append-only history) and the firmware each device runs.
-- Writers of one firmware version's SBOM and findings lock its firmware_versions row first
-- (see pg_inventory.rs), so replicas never interleave two imports or two re-matches.

CREATE TABLE firmware_versions (
    model          TEXT NOT NULL,
    version        TEXT NOT NULL,
    released_on    TEXT,
    support_level  TEXT NOT NULL CHECK (support_level IN ('supported', 'security-only', 'unsupported')),
    end_of_support TEXT,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (model, version)
);

CREATE TABLE sboms (
    model        TEXT NOT NULL,
    version      TEXT NOT NULL,
    format       TEXT NOT NULL,
    spec_version TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    imported_at  BIGINT NOT NULL,
    PRIMARY KEY (model, version),
    FOREIGN KEY (model, version) REFERENCES firmware_versions (model, version)
);

CREATE TABLE sbom_components (
    model          TEXT NOT NULL,
    version        TEXT NOT NULL,
    idx            BIGINT NOT NULL,
    ref_id         TEXT,
    name           TEXT NOT NULL,
    comp_version   TEXT,
    supplier       TEXT,
    purl           TEXT,
    cpes           TEXT NOT NULL,
    hashes         TEXT NOT NULL,
    licenses       TEXT NOT NULL,
    support_level  TEXT,
    end_of_support TEXT,
    PRIMARY KEY (model, version, idx),
    FOREIGN KEY (model, version) REFERENCES sboms (model, version) ON DELETE CASCADE
);
CREATE INDEX sbom_components_purl ON sbom_components (purl);

CREATE TABLE sbom_dependencies (
    model    TEXT NOT NULL,
    version  TEXT NOT NULL,
    idx      BIGINT NOT NULL,
    from_ref TEXT NOT NULL,
    to_ref   TEXT NOT NULL,
    PRIMARY KEY (model, version, idx),
    FOREIGN KEY (model, version) REFERENCES sboms (model, version) ON DELETE CASCADE
);

CREATE TABLE advisories (
    id          TEXT PRIMARY KEY,
    modified    BIGINT NOT NULL, -- microseconds since the epoch
    withdrawn   BIGINT NOT NULL,
    raw         BYTEA NOT NULL,
    imported_at BIGINT NOT NULL
);

CREATE TABLE kev_catalog (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    raw         BYTEA NOT NULL,
    imported_at BIGINT NOT NULL
);

CREATE TABLE findings (
    model       TEXT NOT NULL,
    version     TEXT NOT NULL,
    vuln_id     TEXT NOT NULL,
    component   TEXT NOT NULL,
    identifiers TEXT NOT NULL,
    advisories  TEXT NOT NULL,
    matched_by  TEXT NOT NULL CHECK (matched_by IN ('purl', 'cpe')),
    summary     TEXT,
    cvss_score  DOUBLE PRECISION,
    cvss_vector TEXT,
    kev         BIGINT NOT NULL,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    PRIMARY KEY (model, version, vuln_id, component),
    FOREIGN KEY (model, version) REFERENCES firmware_versions (model, version)
);

-- Decisions are history: rows are only ever added. They reference the firmware version, never
-- a findings row, so re-matching (which replaces findings) cannot lose them.
CREATE TABLE vex_decisions (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model         TEXT NOT NULL,
    version       TEXT NOT NULL,
    vuln_id       TEXT NOT NULL,
    component     TEXT,
    state         TEXT NOT NULL CHECK (state IN ('in_triage', 'affected', 'not_affected', 'fixed', 'false_positive')),
    justification TEXT,
    detail        TEXT NOT NULL,
    action        TEXT,
    author        TEXT NOT NULL,
    at            BIGINT NOT NULL,
    FOREIGN KEY (model, version) REFERENCES firmware_versions (model, version)
);
CREATE INDEX vex_decisions_fw ON vex_decisions (model, version);

CREATE TABLE device_firmware (
    model       TEXT NOT NULL,
    serial      TEXT NOT NULL,
    version     TEXT NOT NULL,
    reported_at BIGINT NOT NULL,
    PRIMARY KEY (model, serial),
    FOREIGN KEY (model, serial) REFERENCES devices (model, serial),
    FOREIGN KEY (model, version) REFERENCES firmware_versions (model, version)
);
CREATE INDEX device_firmware_version ON device_firmware (model, version);
