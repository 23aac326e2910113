"""Shared helpers of the Non-SNAP resources."""

from __future__ import annotations

import re
import uuid

from .. import _validation as v
from .._constants import REQUEST_ID_MAX
from .._nonsnap import NonSnapOperations, NonSnapRequester

_REQUEST_ID = re.compile(r"[\x21-\x7e]+")


def request_id_or_new(request_id: str | None) -> str:
    """Validate a caller's ``Request-Id`` or make a fresh one (a UUID4)."""
    if request_id is None:
        return str(uuid.uuid4())
    return v.text(
        "request_id",
        request_id,
        max_len=REQUEST_ID_MAX,
        pattern=_REQUEST_ID,
        allowed="visible ASCII characters (no spaces)",
    )


class NonSnapResource:
    """Base of the Non-SNAP product resources: the client hands each its requester and the
    endpoints, so no resource reaches back into the client."""

    def __init__(self, requester: NonSnapRequester, ops: NonSnapOperations) -> None:
        self._requester = requester
        self._ops = ops

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
