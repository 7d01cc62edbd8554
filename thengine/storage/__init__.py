"""Storage: the SQLite (apsw) side of thengine. No trio, no click.

- `connection`: `connect` and the pragmas every connection gets.
- `migrations`: numbered SQL files, `migrate`, `check_schema`, `SCHEMA_VERSION`.
- `lock`: `EngineLock`, the one-writer rule.
- `store`: `Store`, the event log, snapshots, command records, timers and meta.
"""
