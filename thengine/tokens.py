"""Tokens for `thengine serve` (signed, expiring): see `thengine.server.tokens`.

This module keeps the documented import path; the code lives beside the server's.
"""

from .server.tokens import DEFAULT_TTL_S as DEFAULT_TTL_S
from .server.tokens import MAX_TOKEN_LEN as MAX_TOKEN_LEN
from .server.tokens import ROLES as ROLES
from .server.tokens import SECRET_BYTES as SECRET_BYTES
from .server.tokens import SECRET_META_KEY as SECRET_META_KEY
from .server.tokens import Claims as Claims
from .server.tokens import TokenError as TokenError
from .server.tokens import check_claims as check_claims
from .server.tokens import decode_secret as decode_secret
from .server.tokens import encode_secret as encode_secret
from .server.tokens import issue as issue
from .server.tokens import new_secret as new_secret
from .server.tokens import secret_id as secret_id
from .server.tokens import verify as verify
