"""The one `httpx.AsyncClient` each HTTP backend shares across all its requests.

Separate connect and read timeouts (a dead host is found fast; a model may take minutes
to load), a pool sized to the chats streamed at once, and no proxy settings taken from
the environment by surprise.
"""

from __future__ import annotations

import httpx


def make_client(
    base_url: str,
    headers: dict[str, str],
    *,
    connect_timeout: float,
    read_timeout: float,
    max_connections: int,
    auth: httpx.Auth | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        auth=auth,
        headers=headers,
        timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        transport=transport,
        trust_env=False,
    )


async def answers(client: httpx.AsyncClient, path: str, timeout: float) -> bool:
    """Whether the server answers at all: any HTTP status counts, only silence does not."""
    try:
        await client.get(path, timeout=timeout)
    except httpx.HTTPError:
        return False
    return True
