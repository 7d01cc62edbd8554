"""A client for `thengine serve`, shaped like the embedded `Engine` API: see
`thengine.server.client` (``connect(url, token, reconnect=True)`` survives the network).

This module keeps the documented import path; the code lives beside the server's.
"""

from .server.client import Client as Client
from .server.client import RemoteSubscription as RemoteSubscription
from .server.client import RemoteTicket as RemoteTicket
from .server.client import RemoteWatch as RemoteWatch
from .server.client import RequestFailed as RequestFailed
from .server.client import ResultUnknown as ResultUnknown
from .server.client import ServerError as ServerError
from .server.client import connect as connect
