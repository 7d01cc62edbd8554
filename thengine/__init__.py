"""thengine: a treasure-hunt event engine with a durable log and exact offline replay.

The public API is what this module exports; everything else is internal.
"""

from ._version import __version__ as __version__
from .domain.commands import AdjustScore as AdjustScore
from .domain.commands import CheckIn as CheckIn
from .domain.commands import CreateHunt as CreateHunt
from .domain.commands import EndHunt as EndHunt
from .domain.commands import ExtendHunt as ExtendHunt
from .domain.commands import Flags as Flags
from .domain.commands import Hunt as Hunt
from .domain.commands import Hunts as Hunts
from .domain.commands import JoinHunt as JoinHunt
from .domain.commands import Leaderboard as Leaderboard
from .domain.commands import LeaveHunt as LeaveHunt
from .domain.commands import Player as Player
from .domain.commands import Rejection as Rejection
from .domain.commands import RemovePlayer as RemovePlayer
from .domain.commands import RequestHint as RequestHint
from .domain.commands import StartHunt as StartHunt
from .domain.commands import SubmitAnswer as SubmitAnswer
from .domain.commands import parse_command as parse_command
from .domain.commands import parse_query as parse_query
from .domain.definition import HuntDefinition as HuntDefinition
from .domain.definition import parse_definition as parse_definition
from .domain.definition import parse_hunt_toml as parse_hunt_toml
from .domain.options import Decay as Decay
from .domain.options import Options as Options
from .domain.options import TimeBonus as TimeBonus
from .domain.events import StoredEvent as StoredEvent
from .domain.result import Result as Result

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .runtime.engine import Engine as Engine
    from .runtime.engine import open_engine as open_engine


def __getattr__(name: str) -> object:
    # The runtime (trio, apsw) loads on first use, so `import thengine.domain` stays pure.
    if name in ("Engine", "open_engine"):
        from .runtime import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'thengine' has no attribute {name!r}")

__all__ = [
    "AdjustScore", "CheckIn", "CreateHunt", "Decay", "EndHunt", "Engine", "ExtendHunt", "Flags", "Hunt",
    "HuntDefinition", "Hunts", "JoinHunt", "Leaderboard", "LeaveHunt", "Options", "Player", "Rejection",
    "RemovePlayer", "RequestHint", "Result", "StartHunt", "StoredEvent", "SubmitAnswer", "TimeBonus",
    "__version__", "open_engine", "parse_command", "parse_definition", "parse_hunt_toml",
    "parse_query",
]
