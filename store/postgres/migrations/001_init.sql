-- keygate schema, version 1. Times are Unix nanoseconds (bigint) so that
-- Go times round-trip exactly (timestamptz keeps microseconds); NULL is
-- the zero time.

-- The change counter: one row, updated in each change's own transaction.
-- Its row lock serialises key changes, so changes commit in seq order and
-- a reader of seq > N never skips one (a SEQUENCE would hand out numbers
-- before commit, out of commit order).
CREATE TABLE feed (
	one boolean PRIMARY KEY DEFAULT true CHECK (one),
	seq bigint NOT NULL
);
INSERT INTO feed VALUES (true, 0);

CREATE TABLE keys (
	id          text PRIMARY KEY,
	hash        bytea NOT NULL UNIQUE,
	hint        text NOT NULL,
	name        text NOT NULL,
	description text NOT NULL,
	scopes      text[] NOT NULL,
	created_ns  bigint,
	expires_ns  bigint,
	revoked_ns  bigint,
	report_only boolean NOT NULL,
	-- version counts the key's changes (1 at create): the ETag of If-Match.
	version     bigint NOT NULL
);

-- Allowlist entries, in the key's order (pos), with their stable ids.
CREATE TABLE entries (
	key_id     text NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
	pos        int NOT NULL,
	id         text NOT NULL,
	prefix     cidr NOT NULL,
	label      text NOT NULL,
	expires_ns bigint,
	PRIMARY KEY (key_id, pos)
);

-- The audit trail and change feed. before/after are the keys as JSON
-- (readable with SQL, and by keygate migrate's successors).
CREATE TABLE changes (
	seq     bigint PRIMARY KEY,
	time_ns bigint NOT NULL,
	actor   text NOT NULL,
	action  text NOT NULL,
	key_id  text NOT NULL,
	before  jsonb,
	after   jsonb NOT NULL
);

-- Usage log, partitioned by day on time_ns; retention drops partitions.
-- id is the order records were written in (a daemon writes its records in
-- the order it received them): queries go newest first by id, and a
-- cursor is an id.
CREATE SEQUENCE usage_log_seq;
CREATE TABLE usage_log (
	id         bigint NOT NULL DEFAULT nextval('usage_log_seq'),
	time_ns    bigint NOT NULL,
	node       text NOT NULL,
	key_id     text NOT NULL,
	entry_id   text NOT NULL,
	ip         text NOT NULL,
	-- method and path as received: bytes, not necessarily UTF-8.
	method     bytea NOT NULL,
	path       bytea NOT NULL,
	status     int NOT NULL,
	code       text NOT NULL,
	latency_us bigint NOT NULL
) PARTITION BY RANGE (time_ns);
-- Newest first, for one key and for all; method and status filter the
-- rows found through these, and time ranges prune partitions and use the
-- BRIN index (records arrive in about time order; a BRIN costs next to
-- nothing to maintain, which a third B-tree would not).
CREATE INDEX usage_log_key_id ON usage_log (key_id, id DESC);
CREATE INDEX usage_log_newest ON usage_log (id DESC);
CREATE INDEX usage_log_time ON usage_log USING brin (time_ns);

-- Newest record time per key, upserted with each batch.
CREATE TABLE last_used (
	key_id  text PRIMARY KEY,
	time_ns bigint NOT NULL
);
