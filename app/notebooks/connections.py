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
    authority_end = len(rest)
    for stop in "/?#":
        index = rest.find(stop, rest.rfind("@") + 1)
        if index != -1:
            authority_end = min(authority_end, index)
    authority, tail = rest[:authority_end], rest[authority_end:]
    userinfo, at, hosts = authority.rpartition("@")
    if at and ":" in userinfo:
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
