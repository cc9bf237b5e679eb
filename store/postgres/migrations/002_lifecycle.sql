-- keygate schema, version 2: the allowlist lifecycle (issue 14). A key's
-- previous secret after a rotation (hash, hint, until when it works),
-- entries that are switched off, and the hint of the secret each usage-log
-- record presented.
ALTER TABLE keys ADD COLUMN prev_hash bytea;
ALTER TABLE keys ADD COLUMN prev_hint text NOT NULL DEFAULT '';
ALTER TABLE keys ADD COLUMN prev_expires_ns bigint;
ALTER TABLE entries ADD COLUMN disabled boolean NOT NULL DEFAULT false;
ALTER TABLE usage_log ADD COLUMN secret_hint text NOT NULL DEFAULT '';
