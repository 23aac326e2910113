"""Fork safety (issue 17): a pre-forked worker must not repeat its parent's ids.

The ``X-EXTERNAL-ID`` generator is a private ``random.Random`` seeded once per process; without
a reseed in the child, a child forked after the parent drew ids continues the same sequence.
A fresh interpreter (so the fork happens outside pytest's process, with its threads and
finalizers) draws, forks twice, and has the parent and both children draw the next ids; the
test compares them. The Non-SNAP ``Request-Id`` (UUID4, from ``os.urandom``) and the backoff
jitter (the ``random`` module, reseeded by Python itself) are compared the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")

DRAWS = 20
SOURCES = ("external_ids", "request_ids", "jitter")

SCRIPT = textwrap.dedent(
    """
    import json, os, random, sys
    from doku_async._pipeline import new_external_id
    from doku_async.resources._nonsnap_base import request_id_or_new

    def draw():
        return {
            "external_ids": [new_external_id() for _ in range(DRAWS)],
            "request_ids": [request_id_or_new(None) for _ in range(DRAWS)],
            "jitter": [repr(random.random()) for _ in range(DRAWS)],
        }

    def forked():
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read_end)
                os.write(write_end, json.dumps(draw()).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        os.waitpid(pid, 0)
        return json.loads(data)

    new_external_id()  # state before the fork, as in a pre-forked server
    children = [forked(), forked()]
    print(json.dumps({"parent": draw(), "children": children}))
    """
).replace("DRAWS", str(DRAWS))


def test_forked_children_draw_ids_the_parent_and_each_other_do_not() -> None:
    done = subprocess.run(  # noqa: S603 (this interpreter, a fixed script)
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(done.stdout)
    parent, (first, second) = result["parent"], result["children"]
    for source in SOURCES:
        for name, drawn in (("parent", parent), ("first", first), ("second", second)):
            assert len(set(drawn[source])) == DRAWS, (source, name)
        repeated = set(first[source]) & set(parent[source])
        assert not repeated, f"{source}: a child repeated the parent's {sorted(repeated)[:3]}"
        assert not set(first[source]) & set(second[source]), f"{source}: two children agree"
