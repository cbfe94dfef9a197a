"""A notebook's database connection string: encrypted at rest, shown with its password masked.

Pure (no I/O).  The string is stored as a Fernet token so a database dump or
the admin dashboard never reveals credentials; clients get it back with only
the password replaced by ``***`` so they can still see which server a
notebook talks to.  Both URL (``postgresql://u:p@h/db``) and libpq key/value
(``host=h password=p``) forms are understood.
"""

from __future__ import annotations

import re

from cryptography.fernet import Fernet, InvalidToken

MASK = "***"
_KEY_VALUE_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&#]*)", re.IGNORECASE)


def mask_password(connection_string: str) -> str:
    scheme, sep, rest = connection_string.partition("://")
    if not sep:
        return _KEY_VALUE_PASSWORD.sub(lambda m: m.group(1) + MASK, connection_string)
    # The userinfo ends at the last "@" before any "?" or "#": an "@" in a query
    # value is not a separator, while an unencoded "/" or "@" in a password
    # (common in hand-written strings) still leaves the password masked.
    stops = [index for index in (rest.find(stop) for stop in "?#") if index != -1]
    before_query = min(stops, default=len(rest))
    last_at = rest.rfind("@", 0, before_query)
    slash = rest.find("/", last_at + 1, before_query)
    authority_end = before_query if slash == -1 else slash
    authority, tail = rest[:authority_end], rest[authority_end:]
    userinfo, separator, hosts = authority.rpartition("@")
    if separator and ":" in userinfo:
        user = userinfo.partition(":")[0]
        authority = f"{user}:{MASK}@{hosts}"
    tail = _QUERY_PASSWORD.sub(lambda m: m.group(1) + MASK, tail)
    return f"{scheme}://{authority}{tail}"


class ConnectionStringCipher:
    """Fernet with the service's ``ENCRYPTION_KEY``, built once at start-up."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode("ascii"))

    def encrypt(self, connection_string: str) -> str:
        return self._fernet.encrypt(connection_string.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str | None:
        """The clear string, or None when the token was made with another key."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            return None

    def masked(self, token: str | None) -> str | None:
        if token is None:
            return None
        clear = self.decrypt(token)
        return MASK if clear is None else mask_password(clear)
