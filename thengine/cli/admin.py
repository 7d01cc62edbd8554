"""Database administration: init, hunt add, stats, token, backup.

Also the small pieces every command module shares: opening a database for a command
(a missing, foreign or uninitialised file is bad input, exit 2), running trio at the
edge, the ``[DB] FILE`` argument pair, and the ``--url``/``--token`` options.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import IO, Any, NoReturn, TypeVar

import apsw
import click
import trio

from ..domain.commands import CreateHunt, Rejection, StartHunt
from ..domain.commands import Hunt as HuntQuery
from ..domain.definition import MAX_DEFINITION_BYTES, parse_hunt_toml
from ..cluster.config import ClusterError, partition_of
from ..errors import DefinitionError, EngineLocked, StorageError, ThengineError, leaves
from ..runtime.engine import Engine, open_engine
from ..storage import migrations
from ..storage.connection import connect
from ..storage.lock import EngineLock
from ..storage.store import Store
from ..server.tokens import (
    DEFAULT_TTL_S,
    ROLES,
    SECRET_META_KEY,
    check_claims,
    decode_secret,
    encode_secret,
    issue,
    new_secret,
)
from ._group import DEFAULT_DB, BadInput, fail, main

T = TypeVar("T")


# -- shared by the command modules --------------------------------------------------


def _one_line(exc: click.UsageError, ctx: click.Context) -> click.ClickException:
    """A usage error as one `thengine: error:` line (a bare group's help is left as it is)."""
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        return exc
    message = " ".join(exc.format_message().split())
    return BadInput(f"{message} (see `{ctx.command_path} --help`)")


class Command(click.Command):
    """A click command whose usage errors are one ``thengine: error:`` line, exit 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _one_line(exc, ctx) from exc


class SubGroup(click.Group):
    """A sub-group (``thengine hunt``) with the same one-line usage errors."""

    command_class = Command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _one_line(exc, ctx) from exc

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            raise _one_line(exc, ctx) from exc


def run_async(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """`trio.run` for a command, with the error it raised unwrapped from its nursery's group.

    Nurseries wrap exceptions in `ExceptionGroup`s; the CLI's exit codes need the
    thengine error (or click exception, or Ctrl-C) inside. Anything else is a bug and
    keeps its traceback.
    """
    try:
        return trio.run(fn, *args)
    except BaseExceptionGroup as group:
        leaf = _meaningful_leaf(group)
        if leaf is None:
            raise
        raise leaf from None


def _meaningful_leaf(group: BaseExceptionGroup[Any]) -> BaseException | None:
    found = leaves(group)
    for kinds in ((click.ClickException, click.exceptions.Exit, SystemExit), (ThengineError,), (KeyboardInterrupt,)):
        for leaf in found:
            if isinstance(leaf, kinds):
                return leaf
    return None


def require_database(path: str) -> None:
    """Bad input unless a database file exists at `path` (commands other than init never create one)."""
    if not os.path.exists(path):
        fail(f"no database at {path}; create one with `thengine init {path}`")
    if os.path.isdir(path):
        fail(f"{path} is a directory, not a database")


def open_store(path: str, *, readonly: bool = True) -> Store:
    """Open an existing, current database; any problem opening it is bad input (exit 2).

    Read-only opens never write to the file (events, stats, backup use them while an
    engine runs); a writable open here never migrates (only `init` does).
    """
    require_database(path)
    try:
        return Store.open(path, readonly=readonly, migrate=False)
    except StorageError as exc:
        raise BadInput(str(exc)) from exc


@asynccontextmanager
async def engine_at(path: str, **options: Any) -> AsyncIterator[Engine]:
    """`open_engine` on an existing database; failing to open it is bad input (exit 2)."""
    require_database(path)
    _schema_version(path)  # a foreign file is refused before the engine makes its lock file
    opened = False
    try:
        async with open_engine(path, **options) as engine:
            opened = True
            yield engine
    except StorageError as exc:
        if opened:
            raise
        raise BadInput(str(exc)) from exc


def split_db_args(paths: Sequence[str], name: str) -> tuple[str, str]:
    """``[DB] NAME``: one argument is NAME (DB is the default), two are DB and NAME."""
    if len(paths) == 1:
        return DEFAULT_DB, paths[0]
    if len(paths) == 2:
        return paths[0], paths[1]
    if not paths:
        fail(f"missing argument {name}")
    fail(f"too many arguments: expected [DB] {name}, got {len(paths)}")


def remote_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--url ws://... --token T``: go through a running server instead of the file."""
    fn = click.option("--token", metavar="TOKEN", help="An admin token for --url (see `thengine token`).")(fn)
    fn = click.option(
        "--url", metavar="ws://HOST:PORT/v1",
        help="Go through a running `thengine serve` instead of opening DB (while a server holds DB).",
    )(fn)
    return fn


def check_remote(url: str | None, token: str | None) -> None:
    """``--url`` and ``--token`` come together."""
    if url is not None and not token:
        fail("--url needs --token (an admin token: `thengine token DB --role admin`)")
    if token is not None and url is None:
        fail("--token goes with --url")


def engine_or_server(db: str, url: str | None, token: str | None) -> Any:
    """`engine_at(db)`, or with ``--url`` a `thengine.client` connection (same submit/send/query)."""
    if url is None:
        return engine_at(db)
    from ..server.client import connect

    return connect(url, token or "")


def fail_each(problems: Sequence[str]) -> NoReturn:
    """Report every problem on its own ``thengine: error:`` line, then exit 2."""
    for problem in problems[:-1]:
        click.echo(f"thengine: error: {problem}", err=True)
    fail(problems[-1])


def sql_rows(store: Store, what: str, sql: str, bindings: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """A read the `Store` has no method for, with apsw errors translated like its own."""
    return store.rows(what, sql, bindings)


def write_all(stream: IO[bytes], data: bytes) -> None:
    """Write and flush every byte. A raw stream (stdout under PYTHONUNBUFFERED or -u) may
    write only part of `data`, e.g. when a signal interrupts a write to a full pipe."""
    view = memoryview(data)
    while view:
        written = stream.write(view)
        if written is None:  # a non-blocking stream that is full: wait for it
            select.select([], [stream], [])
            continue
        view = view[written:]
    stream.flush()


def silence_stdout(stream: IO[Any]) -> None:
    """After a broken pipe: point stdout at /dev/null, so the flush at exit cannot fail again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError  # pragma: no cover


# -- init ---------------------------------------------------------------------------


def ensure_secret(store: Store) -> tuple[bytes, bool]:
    """The token secret, made now if the database has none. Returns it and whether it is new.

    Reads first and writes only when there is no secret, so a read-only database that
    has one works (and one that has none names the real cause).
    """
    stored = store.get_meta(SECRET_META_KEY)
    if stored is not None:
        return decode_secret(stored), False
    fresh = encode_secret(new_secret())
    # Kept if another process made one meanwhile: tokens it issued stay valid.
    store.set_meta(SECRET_META_KEY, fresh, replace=False, what="making the token secret")
    stored = store.get_meta(SECRET_META_KEY)
    assert stored is not None
    return decode_secret(stored), stored == fresh


def _schema_version(path: str) -> int:
    """The schema version of an existing file (0: empty or never initialised)."""
    try:
        conn = connect(path, readonly=True)
    except StorageError as exc:
        raise BadInput(str(exc)) from exc
    try:
        return migrations.user_version(conn)
    except apsw.Error as exc:
        raise BadInput(f"{path}: cannot read the schema version: {exc}") from exc
    finally:
        conn.close()


@main.command(cls=Command)
@click.argument("db", default=DEFAULT_DB, required=False)
def init(db: str) -> None:
    """Create the database DB, or migrate it to this thengine's schema.

    Also makes the secret that `thengine token` signs with, if DB has none. Safe to
    run again: an up-to-date database is left as it is. Migrating needs no engine to
    be running on DB.

    \b
    Example:
      thengine init hunts.db
    """
    if os.path.isdir(db):
        fail(f"{db} is a directory, not a database")
    parent = os.path.dirname(os.path.abspath(db))
    if not os.path.isdir(parent):
        fail(f"cannot create {db}: no directory {parent}")
    before = _schema_version(db) if os.path.exists(db) else None
    current = migrations.SCHEMA_VERSION
    lock: EngineLock | None = None
    try:
        lock = EngineLock.acquire(db)
    except EngineLocked as exc:
        if before != current:
            raise EngineLocked(f"cannot migrate: {exc}") from exc
        # A running engine and nothing to migrate: making the secret is still safe.
    try:
        try:
            store = Store.open(db)
        except StorageError as exc:
            raise BadInput(str(exc)) from exc
        with store:
            _, made_secret = ensure_secret(store)
    finally:
        if lock is not None:
            lock.release()
    secret_note = " and a new token secret" if made_secret else ""
    if before is None:
        click.echo(f"created {db} (schema version {current}){secret_note}")
    elif before != current:
        click.echo(f"migrated {db} from schema version {before} to {current}{secret_note}")
    else:
        made = "; made a new token secret" if made_secret else ""
        click.echo(f"{db} is up to date (schema version {current}){made}")


# -- hunt add -----------------------------------------------------------------------


@main.group(cls=SubGroup)
def hunt() -> None:
    """Manage hunts: `thengine hunt add`, `thengine hunt codes`."""


@hunt.command("add")
@click.argument("paths", nargs=-1, metavar="[DB] FILE.toml")
@click.option("--start", is_flag=True, help="Start the hunt at once (otherwise players may join, and it waits for start_hunt or its starts_at).")
@click.option("--cluster", "cluster_file", metavar="CLUSTER.toml",
              help="Add it to its partition's database in this cluster (instead of DB).")
@remote_options
def hunt_add(paths: tuple[str, ...], start: bool, cluster_file: str | None, url: str | None,
             token: str | None) -> None:
    """Validate the hunt file FILE.toml and create its hunt in DB.

    With one argument it is the hunt file and DB is ./thengine.db. Every problem in
    the file is reported, one per line with its place (`clues[2].hints[0].penalty:
    must be >= 0, got -5`), and nothing is created. DB must exist (`thengine init`)
    and no engine may be running on it: while `thengine serve` holds DB, use
    --url ws://HOST:PORT/v1 --token ADMIN_TOKEN to go through the server.

    \b
    Examples:
      thengine hunt add hunts.db examples/hunts/old-town.toml --start
      thengine hunt add old-town.toml
      thengine hunt add --cluster cluster.toml old-town.toml
    """
    if cluster_file is not None and len(paths) != 1:
        fail("with --cluster, give only FILE.toml: the hunt goes to its partition's database")
    db, file = split_db_args(paths, "FILE.toml")
    check_remote(url, token)
    try:
        with open(file, "rb") as f:
            raw = f.read(MAX_DEFINITION_BYTES + 1)
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    if len(raw) > MAX_DEFINITION_BYTES:
        fail(f"{file}: a hunt file must be at most {MAX_DEFINITION_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
        definition = parse_hunt_toml(text)
    except UnicodeDecodeError as exc:
        fail(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})")
    except DefinitionError as exc:
        fail_each([f"{file}: {problem}" for problem in exc.problems])
    if cluster_file is not None:
        from .cluster import load

        made = load(cluster_file)
        partition = partition_of(definition.id, made.partitions)
        db = str(made.db_path(partition))
        click.echo(f"hunt {definition.id} belongs to partition {partition} (node {made.owner(partition).name})",
                   err=True)
    summary = run_async(_add_hunt, db, CreateHunt(definition=definition), start, url, token)
    click.echo(summary)


async def _add_hunt(db: str, create: CreateHunt, start: bool, url: str | None = None, token: str | None = None) -> str:
    hunt_id = create.hunt_id
    async with engine_or_server(db, url, token) as engine:
        result = await engine.submit(create)
        _refuse_rejection(result.error, f"cannot create hunt {hunt_id!r}")
        if start:
            result = await engine.submit(StartHunt(hunt_id=hunt_id))
            _refuse_rejection(result.error, f"created hunt {hunt_id!r} but cannot start it")
        answer = await engine.query(HuntQuery(hunt_id=hunt_id))
    assert isinstance(answer, dict)
    return (f"hunt {hunt_id}: created{' and started' if start else ''}, "
            f"{answer['clues']} clues, status {answer['status']}")


def _refuse_rejection(error: Rejection | None, what: str) -> None:
    if error is not None:
        fail(f"{what}: {error.message} ({error.code})")


# -- stats --------------------------------------------------------------------------


def _players_by_hunt(store: Store) -> dict[str, int]:
    rows = sql_rows(
        store, "counting players",
        "SELECT hunt_id, count(DISTINCT json_extract(data, '$.player_id')) FROM events "
        "WHERE type = 'player_joined' GROUP BY hunt_id",
    )
    return dict(rows)


def _snapshot_heads(store: Store) -> dict[str, tuple[int, int]]:
    rows = sql_rows(store, "reading snapshot versions",
                    "SELECT hunt_id, max(version), max(seq) FROM snapshots GROUP BY hunt_id")
    return {hunt_id: (version, seq) for hunt_id, version, seq in rows}


def collect_stats(store: Store) -> dict[str, Any]:
    """Everything `thengine stats` reports, as the JSON object it prints with --json."""
    base = store.stats()
    heads = store.hunt_heads()
    players = _players_by_hunt(store)
    snapshots = _snapshot_heads(store)
    by_hunt: dict[str, Any] = {}
    covered = 0
    for hunt_id, (version, seq) in sorted(heads.items()):
        snap_version, snap_seq = snapshots.get(hunt_id, (0, 0))
        covered += min(snap_version, version)
        by_hunt[hunt_id] = {
            "events": version,
            "last_seq": seq,
            "players": players.get(hunt_id, 0),
            "snapshot_version": snap_version,
            "snapshot_seq": snap_seq,
            "events_after_snapshot": max(version - snap_version, 0),
        }
    events = base["events"]
    return {
        "database": store.path,
        "schema_version": base["schema_version"],
        "events": events,
        "last_seq": base["last_seq"],
        "hunts": base["hunts"],
        "players": sum(players.values()),
        "snapshots": base["snapshots"],
        "commands": base["commands"],
        "timers": base["timers"],
        "db_bytes": base["db_bytes"],
        "wal_bytes": base["wal_bytes"],
        "snapshot_coverage": {
            "covered_events": covered,
            "percent": round(100 * covered / events, 1) if events else 100.0,
        },
        "by_hunt": by_hunt,
    }


@main.command(cls=Command)
@click.argument("db", default=DEFAULT_DB, required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def stats(db: str, as_json: bool) -> None:
    """Counts, sizes and snapshot coverage of DB (read-only; works while an engine runs).

    Players are the distinct players who ever joined a hunt. Snapshot coverage is the
    share of each hunt's events that a reopening engine need not replay (those up to
    its latest snapshot).

    \b
    Examples:
      thengine stats hunts.db
      thengine stats hunts.db --json
    """
    with open_store(db) as store:
        report = collect_stats(store)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False))
        return
    cov = report["snapshot_coverage"]
    lines = [
        ("database", f"{report['database']} (schema version {report['schema_version']})"),
        ("size", f"{human_bytes(report['db_bytes'])} + WAL {human_bytes(report['wal_bytes'])}"),
        ("events", f"{report['events']:,} (last seq {report['last_seq']:,})"),
        ("hunts", f"{report['hunts']:,}"),
        ("players", f"{report['players']:,}"),
        ("snapshots", f"{report['snapshots']:,}, covering {cov['covered_events']:,} events ({cov['percent']}%)"),
        ("commands", f"{report['commands']:,} remembered command ids"),
        ("timers", f"{report['timers']:,} pending"),
    ]
    for name, value in lines:
        click.echo(f"{name:<10} {value}")
    if report["by_hunt"]:
        rows = [("hunt", "events", "players", "snapshot", "to replay")]
        rows += [(hunt_id, f"{h['events']:,}", f"{h['players']:,}", f"v{h['snapshot_version']:,}",
                  f"{h['events_after_snapshot']:,}") for hunt_id, h in report["by_hunt"].items()]
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        click.echo("")
        for row in rows:
            cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]
            click.echo("  ".join(cells).rstrip())


# -- token --------------------------------------------------------------------------


class Duration(click.ParamType):
    """Seconds, or a number with a unit: 90s, 15m, 24h, 7d."""

    name = "duration"
    _UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower()
        factor = self._UNITS.get(text[-1:], None)
        number = text[:-1] if factor else text
        if not number.isdigit() or int(number) < 1:
            self.fail(f"must be a whole number of seconds >= 1, or with a unit (90s, 15m, 24h, 7d), got {value!r}",
                      param, ctx)
        return int(number) * (factor or 1)


@main.command(cls=Command)
@click.argument("db", default=DEFAULT_DB, required=False)
@click.option("--role", type=click.Choice(ROLES), help="admin: may do anything. player: acts only as --player.")
@click.option("--player", "player_id", metavar="P", help="The player id (required for --role player).")
@click.option("--ttl", type=Duration(), default=DEFAULT_TTL_S, show_default="24h",
              help="How long the token is valid: seconds, or 90s, 15m, 24h, 7d.")
@click.option("--rotate-secret", is_flag=True,
              help="Replace DB's signing secret first: every token issued before stops working.")
@click.option("--cluster", "cluster_file", metavar="CLUSTER.toml",
              help="Sign with the cluster's shared secret (its secret_file) instead of DB's: valid on every node.")
def token(db: str, role: str | None, player_id: str | None, ttl: int, rotate_secret: bool,
          cluster_file: str | None) -> None:
    """Issue an access token for the network server, signed with DB's secret.

    Only the token is printed on stdout, so `TOKEN=$(thengine token ...)` works;
    notes go to stderr. The secret is made by `thengine init` (or here, if DB has none
    yet). Works while an engine runs on DB.

    \b
    Examples:
      thengine token hunts.db --role player --player p1
      thengine token hunts.db --role admin --ttl 1h
      thengine token hunts.db --rotate-secret
      thengine token --cluster cluster.toml --role admin
    """
    if role is None and not rotate_secret:
        fail("give --role admin|player (or --rotate-secret)")
    if role == "admin" and player_id is not None:
        fail("--player is only for --role player")
    if role == "player" and player_id is None:
        fail("--role player needs --player P")
    if role is not None:
        try:  # before touching the database
            check_claims(role=role, player_id=player_id, ttl_s=ttl)
        except ValueError as exc:
            fail(str(exc).replace("player_id:", "--player:", 1))
    now_s = int(time.time())
    if cluster_file is not None:
        if rotate_secret:
            fail("--rotate-secret works on one database; a cluster's secret is its secret_file")
        from .cluster import load

        try:
            secret = load(cluster_file).read_secret()
        except ClusterError as exc:
            fail("; ".join(exc.problems))
        assert role is not None
        click.echo(issue(secret, role=role, player_id=player_id, ttl_s=ttl, now_s=now_s))
        return
    with open_store(db, readonly=False) as store:
        if rotate_secret:
            secret = new_secret()
            store.set_meta(SECRET_META_KEY, encode_secret(secret), what="rotating the token secret")
            click.echo(f"thengine: rotated the token secret of {db}; every token issued before is now invalid",
                       err=True)
        else:
            secret, made = ensure_secret(store)
            if made:
                click.echo(f"thengine: {db} had no token secret; made one", err=True)
    if role is not None:
        click.echo(issue(secret, role=role, player_id=player_id, ttl_s=ttl, now_s=now_s))


# -- backup -------------------------------------------------------------------------


@main.command(cls=Command)
@click.argument("paths", nargs=-1, metavar="[DB] DEST")
def backup(paths: tuple[str, ...]) -> None:
    """Copy DB to the new file DEST, consistent even while an engine writes to DB.

    Uses SQLite's backup API, so events still only in DB's write-ahead log are
    included (a plain file copy would lose them). DEST must not exist: it is never
    overwritten. With one argument it is DEST and DB is ./thengine.db.

    \b
    Example:
      thengine backup hunts.db /backups/hunts-$(date +%F).db
    """
    db, dest = split_db_args(paths, "DEST")
    if os.path.lexists(dest):
        fail(f"{dest} already exists; not overwriting it")
    parent = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(parent):
        fail(f"cannot create {dest}: no directory {parent}")
    with open_store(db) as store:
        store.backup_to(dest)
    with Store.open(dest, readonly=True) as copy:
        last_seq = copy.last_seq()
    size = human_bytes(os.path.getsize(dest))
    click.echo(f"backed up {db} to {dest} ({size}, events up to seq {last_seq})")
