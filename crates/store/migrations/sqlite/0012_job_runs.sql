-- Periodic jobs claimed per period (medsec-core `JobLeases`): the key decides the one runner.
CREATE TABLE job_runs (
    job         TEXT NOT NULL,
    period      INTEGER NOT NULL,
    holder      TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    ok          INTEGER CHECK (ok IN (0, 1)),
    PRIMARY KEY (job, period)
);
CREATE INDEX job_runs_started ON job_runs (started_at);
