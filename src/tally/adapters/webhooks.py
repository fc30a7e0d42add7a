"""Alert deliveries over HTTP (webhooks, Alertmanager): the risk context's Transport."""

from __future__ import annotations

from collections.abc import Mapping

import httpx


class HttpTransport:
    """One pooled HTTP client; a refused connection or timeout is an OSError to the
    deliverer, which schedules the next attempt."""

    def __init__(self) -> None:
        self._client = httpx.Client(follow_redirects=False)

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
        try:
            response = self._client.post(
                url, content=body, headers=dict(headers), timeout=timeout_s
            )
        except httpx.HTTPError as exc:
            raise OSError(f"{type(exc).__name__}: {exc}") from exc
        return response.status_code

    def close(self) -> None:
        self._client.close()
