-- Partitioned CRLs (medsec-ca `crl_shards`). A CA's shard count is fixed when it is created
-- (its certificates name their shard's URL); 1 is the one whole CRL every CA had before.
-- A CRL row names the scope it covers: shard 0 is the whole CA, so the rows written before
-- this migration keep their meaning. CRL numbers stay one sequence per CA (cas.crl_number),
-- shared by its shards, so (ca, number) remains the key.
ALTER TABLE cas ADD COLUMN crl_shards BIGINT NOT NULL DEFAULT 1
    CHECK (crl_shards BETWEEN 1 AND 1024);
ALTER TABLE crls ADD COLUMN shard BIGINT NOT NULL DEFAULT 0 CHECK (shard >= 0);
-- The newest CRL of one shard (what the distribution point serves).
CREATE INDEX crls_scope ON crls (ca, shard, number);
