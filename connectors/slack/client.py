"""The Slack Web API client, retrying what Slack asks to retry: 429 after ``Retry-After``, and dropped connections.

slack-sdk retries only connection errors by default, so without these handlers a burst of answers in one channel
(Slack allows about one post per second there) loses every answer after the first.
"""

from __future__ import annotations

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

RATE_LIMIT_RETRIES = 3
"""Retries of a rate-limited call, each after the ``Retry-After`` Slack sent (usually 1 s for chat methods)."""
CONNECTION_RETRIES = 2


def web_client(token: str, api_url: str) -> AsyncWebClient:
    """The bot's client; bolt copies its retry handlers into the client each listener receives."""
    return AsyncWebClient(
        token=token,
        base_url=api_url,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=CONNECTION_RETRIES),
            AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        ],
    )
