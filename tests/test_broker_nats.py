"""NATS JetStream beyond the shared endpoint suite, on the real server (no mocks)."""

from __future__ import annotations

import asyncio
import contextlib

import nats
import nats.js.errors

URL = "nats://127.0.0.1:4222"


async def _delete(names: tuple[str, ...]) -> None:
    nc = await nats.connect(URL)
    try:
        js = nc.jetstream()
        for name in names:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(name)
    finally:
        await nc.close()


def delete_streams(*names: str) -> None:
    """Delete the streams ``names`` (with their consumers), those that exist."""
    asyncio.run(_delete(names))
