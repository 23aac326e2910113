"""Fork safety (issue 17): a pre-forked worker must not repeat its parent's ids.

The ``X-EXTERNAL-ID`` generator is a private ``random.Random`` seeded once per process; without
a reseed in the child, a child forked after the parent drew ids continues the same sequence. The
test forks after drawing, then has parent and child draw the next ids, and compares. The
Non-SNAP ``Request-Id`` (UUID4, from ``os.urandom``) and the backoff jitter (the ``random``
module, reseeded by Python itself) are compared the same way.
"""

from __future__ import annotations

import json
import os
import random

import pytest

from doku_async._pipeline import new_external_id
from doku_async.resources._nonsnap_base import request_id_or_new

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")

DRAWS = 20


def _draw() -> dict[str, list[str]]:
    return {
        "external_ids": [new_external_id() for _ in range(DRAWS)],
        "request_ids": [request_id_or_new(None) for _ in range(DRAWS)],
        "jitter": [repr(random.random()) for _ in range(DRAWS)],
    }


def _forked_draws() -> dict[str, list[str]]:
    """Fork; the child draws and writes its ids through a pipe; the parent reads them."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child's coverage is not collected)
        try:
            os.close(read_end)
            os.write(write_end, json.dumps(_draw()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    with os.fdopen(read_end, "rb") as pipe:
        while chunk := pipe.read(65536):
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    result: dict[str, list[str]] = json.loads(b"".join(chunks))
    return result


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() in a threaded process (3.12+)
def test_a_forked_child_draws_ids_the_parent_does_not() -> None:
    new_external_id()  # the generator has state before the fork, as in a pre-forked server
    child = _forked_draws()
    parent = _draw()
    for source in ("external_ids", "request_ids", "jitter"):
        assert len(set(child[source])) == DRAWS, source
        common = set(child[source]) & set(parent[source])
        assert not common, f"{source}: the child repeated the parent's {sorted(common)[:3]}"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_two_children_of_one_parent_differ_from_each_other() -> None:
    new_external_id()
    first = _forked_draws()
    second = _forked_draws()
    assert not set(first["external_ids"]) & set(second["external_ids"])
