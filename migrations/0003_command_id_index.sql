-- thengine schema 3: command records can be found by command_id.
--
-- The engine keeps only the newest command ids in memory (`remember_commands`); an id
-- that has left memory, but not the idempotency window, is looked up here. Schema 1
-- left this index out on purpose (random keys make each insert a random b-tree write:
-- benchmarks/command_index.py measures what it costs), but a bounded memory needs it.
CREATE INDEX commands_command_id ON commands (command_id);
