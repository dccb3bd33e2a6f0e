-- PostgreSQL migration 8 (evidence): the schema of ../sqlite/0008_evidence.sql in PostgreSQL's types.
-- Test evidence imported by the manufacturer (JUnit XML, SARIF) for one firmware version of a
-- model: the record with its parsed summary (JSON of medsec_docs::evidence::EvidenceSummary),
-- and the file itself in a table of its own so listings never read the bytes. Not tied to
-- firmware_versions: premarket testing often comes before a version is registered.

-- An identity (never reset) so an evidence id, once cited in a submission, is never given to
-- another file.
CREATE TABLE evidence (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model       TEXT NOT NULL,
    version     TEXT NOT NULL,
    category    TEXT NOT NULL CHECK (category IN ('penetration-test', 'fuzzing', 'static-analysis', 'functional', 'other')),
    kind        TEXT NOT NULL CHECK (kind IN ('junit', 'sarif')),
    file_name   TEXT NOT NULL,
    sha256      TEXT NOT NULL CHECK (length(sha256) = 64),
    size        BIGINT NOT NULL CHECK (size >= 0),
    summary     TEXT NOT NULL,
    imported_at BIGINT NOT NULL,
    author      TEXT NOT NULL,
    -- The same file imported twice for one firmware version is a mistake, not new evidence.
    UNIQUE (model, version, sha256)
);

CREATE TABLE evidence_files (
    evidence_id BIGINT PRIMARY KEY REFERENCES evidence (id),
    bytes       BYTEA NOT NULL
);

-- Evidence is what was tested: once stored, neither the record nor the file changes.
CREATE FUNCTION evidence_refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% cannot be changed', TG_ARGV[0];
END;
$$;

CREATE TRIGGER evidence_no_update BEFORE UPDATE ON evidence
    FOR EACH ROW EXECUTE FUNCTION evidence_refuse_update('evidence records');

CREATE TRIGGER evidence_files_no_update BEFORE UPDATE ON evidence_files
    FOR EACH ROW EXECUTE FUNCTION evidence_refuse_update('evidence files');
