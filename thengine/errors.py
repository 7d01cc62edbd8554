"""thengine's exceptions: raised for infrastructure failures, never for game outcomes.

A wrong answer, a full hunt or an unknown clue is a `Rejection` value in a `Result`.
Exceptions are for what the caller cannot fix by changing the command::

    ThengineError
    ├── DefinitionError      a hunt definition (TOML or JSON) is invalid; lists every problem
    ├── StorageError         the database failed (I/O error, disk full, corrupt file)
    │   ├── EngineLocked     another engine holds the database (names the holder's pid)
    │   └── SchemaTooNew     the database was written by a newer thengine
    ├── EngineClosed         the engine is shut down or shutting down
    ├── UnknownHunt          a watch or a replay names a hunt that does not exist
    └── SubscriberTooSlow    a subscription fell behind its bounded buffer and was dropped
"""

from __future__ import annotations


class ThengineError(Exception):
    """Base of every exception thengine raises on purpose."""


class DefinitionError(ThengineError):
    """A hunt definition is invalid. `problems` lists every problem with its path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class StorageError(ThengineError):
    """A database operation failed; nothing from the failed transaction is visible."""


class EngineLocked(StorageError):
    """Another engine process holds the database's exclusive writer lock."""


class SchemaTooNew(StorageError):
    """The database schema is newer than this version of thengine understands."""


class EngineClosed(ThengineError):
    """The engine is closed (or closing) and takes no more commands."""


class UnknownHunt(ThengineError, LookupError):
    """A hunt asked for by id does not exist (a live leaderboard, an offline replay)."""


class SubscriberTooSlow(ThengineError):
    """A subscriber's buffer overflowed. Resume with `after_seq=last_seen_seq`."""

    def __init__(self, message: str, *, last_seq: int) -> None:
        self.last_seq = last_seq
        super().__init__(message)


def leaves(group: BaseExceptionGroup) -> list[BaseException]:
    """The exceptions inside a (nested) exception group, in order.

    trio's nurseries wrap errors in groups; the engine, the CLI and the client each
    pick the one error worth showing from these.
    """
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out
