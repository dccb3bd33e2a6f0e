-- Periodic jobs claimed per period (medsec-core `JobLeases`): the primary key decides the one
-- replica that runs each (job, period), whatever the replicas' timing.
CREATE TABLE job_runs (
    job         TEXT NOT NULL,
    period      BIGINT NOT NULL,
    holder      TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    ok          BOOLEAN,
    PRIMARY KEY (job, period)
);
CREATE INDEX job_runs_started ON job_runs (started_at);
