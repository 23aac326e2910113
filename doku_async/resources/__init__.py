"""One class per DOKU product, reached as attributes of :class:`~doku_async.DokuClient`."""

from .kirim import Kirim

__all__ = ["Kirim"]
