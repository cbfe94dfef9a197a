"""Realtime (SPEC §11): a notebook's events as they commit, on every instance.

``hub`` fans the events out inside one process, ``listener`` holds the
process's one LISTEN connection (a wake-up only: the events table is the
truth), ``protocol`` is the wire format and close codes, ``services`` the
use cases (tokens, tickets, where a subscription starts), ``controllers``
the WebSocket, Server-Sent Events and ticket routes.  docs/realtime.md
explains the design.
"""
