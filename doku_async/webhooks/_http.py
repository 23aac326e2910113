"""The HTTP pieces of the webhook app: JSON answers, DOKU's acknowledgement, capped reads."""

from __future__ import annotations

import asyncio

import msgspec
from aiohttp import web

__all__ = ["ack", "json_response", "read_capped", "reject"]

_encoder = msgspec.json.Encoder()


def json_response(
    status: int, payload: dict[str, object], headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=_encoder.encode(payload),
        content_type="application/json",
        headers=headers,
    )


def ack(transaction_id: str, code: str, message: str) -> web.Response:
    return json_response(
        200,
        {
            "status": True,
            "transactionId": transaction_id,
            "responseCode": code,
            "responseMessage": message,
        },
    )


def reject(status: int, message: str) -> web.Response:
    return json_response(
        status, {"status": False, "responseCode": str(status), "responseMessage": message}
    )


async def read_capped(request: web.Request, cap: int) -> bytes | None:
    """The body, or ``None`` when it exceeds ``cap`` bytes."""
    length = request.content_length
    if length is not None and length > cap:
        return None
    if length == 0:
        return b""  # aiohttp's empty payload raises on readexactly(0)
    if length is not None and "Content-Encoding" not in request.headers:
        # The HTTP parser holds a plain body to exactly Content-Length bytes: read it at once.
        try:
            return await request.content.readexactly(length)
        except asyncio.IncompleteReadError:
            raise web.RequestPayloadError("body shorter than Content-Length") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
