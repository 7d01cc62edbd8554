"""The command ids the engine remembers in memory: the newest ones, up to a cap.

Idempotency covers a window (24 h by default), but memory holds only the newest
`remember_commands` records; every record is also in the database, so an id that left
memory is still recognised, by a lookup there. `RecentCommands` keeps the in-memory
part and knows when such a lookup is needed: only while some record of the window
has left memory (`spilled_since`). Below the cap, a new id costs no lookup at all.

Records arrive in commit order and leave in the same order (first in, first out), so
both the cap and the window drop the oldest first. A repeated id is the same command
when its `fingerprint` matches the one stored (`same_command`, which also reads the
digests older releases stored).
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Iterable

import attrs

from ..domain.commands import Command, CreateHunt, to_json
from ..storage.codec import dumps_bytes
from ..storage.store import CommandRecord

#: No record has left memory (any `ts` or `seq` is greater).
_NEVER = -(2**63)


class RecentCommands:
    """The newest `cap` command records, by id, and what has left memory.

    Attributes:
        spilled_ts: the newest `ts` of a record that left memory because of the cap
            (and may still be in the window, so in the database); `_NEVER` if none.
        spilled_seq: the newest `last_seq` of such a record. A database lookup that
            started when the log was committed up to `seq` missed none of them if
            ``spilled_seq <= seq``.
    """

    __slots__ = ("cap", "_records", "_order", "spilled_ts", "spilled_seq", "unpruned_ts")

    def __init__(self, cap: int) -> None:
        if cap < 1:
            raise ValueError(f"remember_commands: must be >= 1, got {cap}")
        self.cap = cap
        # Each record as one string (`_encode`), not a `CommandRecord`: the garbage collector
        # never tracks a dict of strings. A dict holding tuples is tracked again, as a new
        # object, whenever a new tuple goes in, so every collection of the youngest
        # generation traversed all 100,000 records (1-3 ms each, many times a second).
        self._records: dict[str, str] = {}
        # Ids in commit order: a deque, because taking the first key of a dict that
        # keeps losing its first keys gets slower and slower (it skips the holes).
        self._order: deque[str] = deque()
        self.spilled_ts = _NEVER
        self.spilled_seq = _NEVER
        #: Records older than this may still be on disk but out of memory: `None` if
        #: none (so pruning the disk has nothing to do that memory does not show).
        self.unpruned_ts: int | None = None

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, command_id: object) -> bool:
        return command_id in self._records

    def get(self, command_id: str) -> CommandRecord | None:
        """The remembered record of `command_id`, or None (which does not mean unknown)."""
        found = self._records.get(command_id)
        return None if found is None else _decode(command_id, found)

    def load(self, records: Iterable[CommandRecord], spilled: CommandRecord | None, since_ts: int) -> None:
        """Start from `records` (oldest first) read at open; `spilled` is the newest
        record of the window (`ts >= since_ts`) left on disk, or None. The disk may
        also hold records older than the window, not yet pruned."""
        for record in records:
            self.remember(record)
        if spilled is not None:
            self._spill(spilled)
        self.unpruned_ts = since_ts

    def remember(self, record: CommandRecord) -> None:
        """Add a committed record, dropping the oldest if over the cap."""
        records = self._records
        command_id = record.command_id
        if command_id in records:  # pragma: no cover - the engine never records an id twice in the window
            self._order.remove(command_id)
        records[command_id] = _encode(record)
        self._order.append(command_id)
        if len(records) > self.cap:
            oldest_id = self._order.popleft()
            oldest = _decode(oldest_id, records.pop(oldest_id))
            self._spill(oldest)
            if self.unpruned_ts is None:
                self.unpruned_ts = oldest.ts

    def _spill(self, record: CommandRecord) -> None:
        self.spilled_ts = max(self.spilled_ts, record.ts)
        self.spilled_seq = max(self.spilled_seq, record.last_seq)

    def spilled_since(self, cutoff_ts: int) -> bool:
        """Whether a record with ``ts >= cutoff_ts`` has left memory (so a miss must ask the database)."""
        return self.spilled_ts >= cutoff_ts

    def forget_before(self, cutoff_ts: int) -> int:
        """Drop records older than `cutoff_ts` (the window's start). Returns how many."""
        records, order = self._records, self._order
        forgotten = 0
        while order and _ts(records[order[0]]) < cutoff_ts:
            del records[order.popleft()]
            forgotten += 1
        return forgotten

    def needs_pruning(self, cutoff_ts: int) -> bool:
        """Whether the database may hold records older than `cutoff_ts` that memory no longer shows."""
        return self.unpruned_ts is not None and self.unpruned_ts < cutoff_ts

    def pruned(self, cutoff_ts: int) -> None:
        """The database no longer holds records older than `cutoff_ts`."""
        if self.unpruned_ts is not None:
            self.unpruned_ts = None if self.spilled_ts < cutoff_ts else cutoff_ts


def _encode(record: CommandRecord) -> str:
    """`record` but its id as one string: ``"ts first_seq last_seq len(fingerprint)
    fingerprint+hunt_id"`` (the strings may hold any character, so they go last)."""
    fingerprint = record.fingerprint
    return f"{record.ts} {record.first_seq} {record.last_seq} {len(fingerprint)} {fingerprint}{record.hunt_id}"


def _decode(command_id: str, encoded: str) -> CommandRecord:
    ts, first_seq, last_seq, length, strings = encoded.split(" ", 4)
    cut = int(length)
    return CommandRecord(command_id, strings[:cut], strings[cut:], int(first_seq), int(last_seq), int(ts))


def _ts(encoded: str) -> int:
    return int(encoded[:encoded.index(" ")])


# -- fingerprints: is a repeated command_id the same command? --------------------------

#: The prefix of a `fingerprint`; a stored one without it is a `legacy_fingerprint` (older releases).
FINGERPRINT_V2 = "2:"
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def fingerprint(command: Command) -> str:
    """A digest of the command's value, its type and fields in order: the same command,
    the same digest, in every process and release (it is stored with the command's id).

    The fields are validated values (strings, numbers, None), so they are encoded as
    they are, with the log's fast JSON codec, not through a canonical JSON object.
    """
    cls = type(command)
    if cls is CreateHunt:  # (a definition is not a plain value; creating a hunt is rare)
        return FINGERPRINT_V2 + legacy_fingerprint(command)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(field.name for field in attrs.fields(cls))
    try:
        data = dumps_bytes([cls.TYPE, *[getattr(command, name) for name in names]])
    except TypeError:  # (a lone surrogate in a command built in Python: decide refuses it)
        return FINGERPRINT_V2 + legacy_fingerprint(command)
    return FINGERPRINT_V2 + hashlib.blake2b(data, digest_size=16).hexdigest()


def legacy_fingerprint(command: Command) -> str:
    """The digest older releases stored: of the command's canonical JSON."""
    text = json.dumps(to_json(command), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def same_command(stored: str, command: Command, digest: str) -> bool:
    """Whether a stored fingerprint is `command`'s (`digest`), whichever release stored it."""
    if stored.startswith(FINGERPRINT_V2):
        return stored == digest
    return stored == legacy_fingerprint(command)
