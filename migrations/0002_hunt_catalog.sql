-- thengine schema 2: a catalog of hunts, kept in step with the log in the same
-- transaction as each lifecycle event (created, started, ended, extended).
--
-- It lets the engine leave hunts that ended long ago out of memory (and out of the
-- work done at open) while still listing them: `summary` is the hunt's entry in the
-- `hunts` query as of its last lifecycle change.
CREATE TABLE hunts (
    hunt_id  TEXT PRIMARY KEY,
    status   TEXT NOT NULL CHECK (status IN ('created', 'running', 'ended')),
    ended_ts INTEGER,
    summary  TEXT NOT NULL
) STRICT;

-- Backfill from the log of a schema-1 database.
INSERT INTO hunts (hunt_id, status, ended_ts, summary)
SELECT hunt_id, 'created', NULL, json_object('hunt_id', hunt_id)
FROM events WHERE type = 'hunt_created';

UPDATE hunts SET status = 'running'
WHERE hunt_id IN (SELECT hunt_id FROM events WHERE type = 'hunt_started');

UPDATE hunts SET status = 'ended',
       ended_ts = (SELECT max(ts) FROM events WHERE events.hunt_id = hunts.hunt_id AND type = 'hunt_ended')
WHERE hunt_id IN (SELECT hunt_id FROM events WHERE type = 'hunt_ended');

UPDATE hunts SET summary = json_object('hunt_id', hunt_id, 'status', status);
