"""State shared by a fleet of processes, on Redis (the ``redis`` extra).

* :class:`RedisDedupStore`: webhook de-duplication shared by every replica of a receiver.
* :class:`RedisTokenStore`: one B2B token for every client (``client.share_token(store)``).
* :class:`FleetRateLimiter`: one request rate, and its back-off on 429, for every runner.

Importing this package needs nothing extra; building a store without ``redis`` installed
raises :class:`~doku_async.ConfigurationError` naming the extra.
"""

from __future__ import annotations

from ._dedup import RedisDedupStore
from ._ratelimit import FleetRateLimiter
from ._tokens import RedisTokenStore

__all__ = ["FleetRateLimiter", "RedisDedupStore", "RedisTokenStore"]
