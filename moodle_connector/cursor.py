"""The poller's durable position in the site's log: the last log id the broker acknowledged."""

from __future__ import annotations

from redis.asyncio import Redis


def cursor_key(site: str) -> str:
    return f"rs:cursor:{site}"


class Cursor:
    """Redis-backed, so a restarted connector resumes where the broker last acknowledged."""

    def __init__(self, redis: Redis, site: str, key: str | None = None) -> None:
        self._redis = redis
        self.key = key or cursor_key(site)

    async def get(self) -> int:
        raw = await self._redis.get(self.key)
        return int(raw) if raw is not None else 0

    async def set(self, last_id: int) -> None:
        """Only ever moves forward: a late writer cannot rewind past published pages."""
        await self._redis.eval(
            "local c = tonumber(redis.call('GET', KEYS[1]) or '0') "
            "if tonumber(ARGV[1]) > c then redis.call('SET', KEYS[1], ARGV[1]) end return 1",
            1,
            self.key,
            str(last_id),
        )
