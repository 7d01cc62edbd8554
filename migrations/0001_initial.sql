-- thengine schema 1: the event log and what the engine keeps beside it.
--
-- Applied by thengine.storage.migrations inside one transaction, which also sets
-- PRAGMA user_version = 1. Never edit a released migration: add 0002_....sql.
-- Tables are STRICT: a value of the wrong type is an error, not silently stored.

-- The log. `seq` is global and gapless, assigned by the single writer (not
-- AUTOINCREMENT); it is the rowid, so reading in seq order is a range scan.
-- `version` is per hunt and gapless; UNIQUE(hunt_id, version) both guards that and
-- serves per-hunt reads in version order. `data` is the event's JSON object as text.
-- `command_id` names the command whose acceptance wrote the event, if it had one.
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY CHECK (seq >= 1),
    hunt_id    TEXT    NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1),
    type       TEXT    NOT NULL,
    ts         INTEGER NOT NULL,
    data       TEXT    NOT NULL,
    command_id TEXT,
    UNIQUE (hunt_id, version)
) STRICT;

-- Snapshots are a cache: hunt state as of (version, seq), serialised in `format`.
-- Deleting them all must give the same state, only slower.
CREATE TABLE snapshots (
    hunt_id TEXT    NOT NULL,
    version INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    format  INTEGER NOT NULL,
    state   BLOB    NOT NULL,
    ts      INTEGER NOT NULL,
    PRIMARY KEY (hunt_id, version)
) STRICT;

-- Accepted commands that carried a command_id, for idempotent retries: the events
-- they wrote are first_seq..last_seq. Deliberately no index on command_id (random
-- keys make every insert a random b-tree write): the engine loads the window into
-- memory by scanning at open. Rows arrive in commit order, so rowid order is ts
-- order, which is what the ts index below relies on being cheap to maintain.
CREATE TABLE commands (
    command_id  TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    hunt_id     TEXT    NOT NULL,
    first_seq   INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL,
    ts          INTEGER NOT NULL
) STRICT;

-- (ts is nearly monotonic, so inserts append at the right edge of this index.)
CREATE INDEX commands_ts ON commands (ts);

-- Durable timers: at most one of each kind ("start", "end", ...) per hunt.
CREATE TABLE timers (
    hunt_id TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    due_ts  INTEGER NOT NULL,
    PRIMARY KEY (hunt_id, kind)
) STRICT;

-- Small settings that belong to the database, such as the token signing secret.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
