"""``Cellar-Seq`` (SPEC §11): the seq of a notebook's last event, on every answer about it.

A realtime client resumes from it (``?since=``) without missing or repeating
an event; ``ETag`` stays the revision.
"""

from __future__ import annotations

from litestar.datastructures import ResponseHeader

SEQ_HEADER = "Cellar-Seq"


def seq_header(seq: int) -> dict[str, str]:
    return {SEQ_HEADER: str(seq)}


def seq_header_spec() -> list[ResponseHeader]:
    """The OpenAPI description of ``Cellar-Seq`` (the handler sets the value)."""
    return [
        ResponseHeader(
            name=SEQ_HEADER,
            value="12",
            description="The seq of the notebook's last event (that of this change, for a "
            "change): pass it as `since` to the history or the event stream.",
            documentation_only=True,
        )
    ]
