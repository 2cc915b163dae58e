"""The deletion schedule in Redis: one sorted set of due times with leased, fenced claims.

Layout (all keys under one prefix, default `janitor`):
  `<prefix>:due`      sorted set, member `bucket/key` (bucket names cannot hold "/"), score = due time
                      (Unix seconds). A claimed member's score is pushed to the lease expiry, so a worker
                      that dies mid-lease loses nothing: the member simply becomes due again.
  `<prefix>:lease`    hash member -> claim token. Only the holder of the current token may acknowledge or
                      retry; a reschedule or cancel clears it, so a late worker cannot undo newer state
                      (a delete request already sent to S3 still happens). ListPending shows a claimed
                      member's lease expiry as its due time.
  `<prefix>:attempts` hash member -> failed deletes so far;  `<prefix>:error` hash member -> last error.
  `<prefix>:dead`     sorted set of dead-lettered members, score = when they gave up.
Every state change is one Lua script, so concurrent replicas never claim the same member twice within
a lease. Times come from the caller's clock (replicas are assumed NTP-synchronised). Many schedules go to
Redis as one script call: a batch from ScheduleDeletions, and single schedules that arrive together
(concurrent gRPC calls).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from mesh.errors import InvalidInput

# ARGV: due, member, due, member, ... in order, so a later pair for the same member wins. Returns, per
# pair, 1 when the member was scheduled or dead-lettered before (it is replaced), else 0.
_SCHEDULE = """
local replaced = {}
for i = 1, #ARGV, 2 do
  local member = ARGV[i + 1]
  local previous = redis.call('ZSCORE', KEYS[1], member)
  redis.call('ZADD', KEYS[1], ARGV[i], member)
  redis.call('HDEL', KEYS[2], member)
  redis.call('HDEL', KEYS[3], member)
  redis.call('HDEL', KEYS[4], member)
  local was_dead = redis.call('ZREM', KEYS[5], member)
  replaced[#replaced + 1] = (previous or was_dead == 1) and 1 or 0
end
return replaced
"""

_CANCEL = """
local removed = redis.call('ZREM', KEYS[1], ARGV[1]) + redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return removed
"""

# ARGV: now, limit, lease expiry, token. Returns member, due time, failed attempts so far, for each claim.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local claimed = {}
for i = 1, #due, 2 do
  local member = due[i]
  redis.call('ZADD', KEYS[1], 'XX', ARGV[3], member)
  redis.call('HSET', KEYS[2], member, ARGV[4])
  claimed[#claimed + 1] = member
  claimed[#claimed + 1] = due[i + 1]
  claimed[#claimed + 1] = redis.call('HGET', KEYS[3], member) or '0'
end
return claimed
"""

# ARGV: token, members... Removes members whose lease is still held by `token`.
_ACK = """
local done = 0
for i = 2, #ARGV do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[1] then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('HDEL', KEYS[3], ARGV[i])
    redis.call('HDEL', KEYS[4], ARGV[i])
    done = done + 1
  end
end
return done
"""

# ARGV: token, now, max attempts, backoff base, backoff cap, error, members...
# Counts a failed attempt; reschedules with exponential backoff or moves to the dead-letter set.
_FAIL = """
local dead = 0
local max_attempts = tonumber(ARGV[3])
for i = 7, #ARGV do
  local member = ARGV[i]
  if redis.call('HGET', KEYS[2], member) == ARGV[1] then
    redis.call('HDEL', KEYS[2], member)
    local attempts = redis.call('HINCRBY', KEYS[3], member, 1)
    redis.call('HSET', KEYS[4], member, ARGV[6])
    if attempts >= max_attempts then
      redis.call('ZREM', KEYS[1], member)
      redis.call('ZADD', KEYS[5], ARGV[2], member)
      dead = dead + 1
    else
      local delay = math.min(tonumber(ARGV[4]) * 2 ^ (attempts - 1), tonumber(ARGV[5]))
      redis.call('ZADD', KEYS[1], 'XX', tonumber(ARGV[2]) + delay, member)
    end
  end
end
return dead
"""

# ARGV: token, due, members... Gives claims back without counting an attempt (the store was unreachable).
_RELEASE = """
for i = 3, #ARGV do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[1] then
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[i])
  end
end
return 0
"""


ScheduleItem = tuple[str, str, float]
"""(bucket, object key, due time in Unix seconds)."""


def member_of(bucket: str, key: str) -> str:
    return f"{bucket}/{key}"


def split_member(member: str) -> tuple[str, str]:
    bucket, _, key = member.partition("/")
    return bucket, key


@dataclass(frozen=True)
class ClaimedItem:
    bucket: str
    key: str
    due: float
    attempts: int

    @property
    def member(self) -> str:
        return member_of(self.bucket, self.key)


@dataclass(frozen=True)
class Claim:
    """Items leased to one worker until `lease_until`; `token` fences acknowledgements."""

    token: str
    items: list[ClaimedItem]
    lease_until: float


@dataclass(frozen=True)
class Entry:
    bucket: str
    key: str
    due: float
    attempts: int
    last_error: str


@dataclass(frozen=True)
class Page:
    entries: list[Entry]
    next_token: str
    total: int


def _encode_cursor(score: float, member: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([score, member]).encode()).decode()


def _decode_cursor(token: str) -> tuple[float, str]:
    try:
        score, member = json.loads(base64.urlsafe_b64decode(token.encode()))
        return float(score), str(member)
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInput("page_token is not a token this service issued") from None


class DeletionSchedule:
    """Atomic operations on the schedule; the Redis client must not decode responses to str."""

    def __init__(self, redis: Redis, prefix: str = "janitor") -> None:
        self.redis = redis
        self.due_key = f"{prefix}:due"
        self.dead_key = f"{prefix}:dead"
        self._keys = [self.due_key, f"{prefix}:lease", f"{prefix}:attempts", f"{prefix}:error", self.dead_key]
        self._schedule = redis.register_script(_SCHEDULE)
        self._cancel = redis.register_script(_CANCEL)
        self._claim = redis.register_script(_CLAIM)
        self._ack = redis.register_script(_ACK)
        self._fail = redis.register_script(_FAIL)
        self._release = redis.register_script(_RELEASE)
        self._waiting: list[tuple[ScheduleItem, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    async def schedule(self, bucket: str, key: str, due: float) -> bool:
        """Set (or replace) the due time; True when a schedule or dead letter for the object existed.

        Concurrent calls share one script call, so many callers cost one Redis round trip."""
        result = asyncio.get_running_loop().create_future()
        self._waiting.append(((bucket, key, due), result))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_schedules())
        return await result

    async def schedule_many(self, items: Sequence[ScheduleItem]) -> list[bool]:
        """`schedule` for every (bucket, key, due) in order, atomically in one script call; a later item
        for the same object wins. Returns each item's `replaced` flag."""
        args = [arg for bucket, key, due in items for arg in (repr(due), member_of(bucket, key))]
        return [bool(flag) for flag in await self._schedule(keys=self._keys, args=args)]

    async def _flush_schedules(self) -> None:
        """Send every waiting schedule in one script call until none are left."""
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                replaced = await self.schedule_many([item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every waiting caller gets the failure
                for _, result in batch:
                    if not result.done():
                        result.set_exception(exc)
                continue
            for (_, result), flag in zip(batch, replaced):
                if not result.done():
                    result.set_result(flag)

    async def cancel(self, bucket: str, key: str) -> bool:
        return bool(await self._cancel(keys=self._keys, args=[member_of(bucket, key)]))

    async def claim(self, now: float, limit: int, lease_seconds: float) -> Claim:
        """Lease up to `limit` due items to the caller until now + lease_seconds."""
        token = secrets.token_hex(8)
        lease_until = now + lease_seconds
        flat = await self._claim(keys=self._keys, args=[repr(now), limit, repr(lease_until), token])
        items = []
        for member, due, attempts in zip(flat[::3], flat[1::3], flat[2::3]):
            bucket, key = split_member(member.decode())
            items.append(ClaimedItem(bucket, key, float(due), int(attempts)))
        return Claim(token, items, lease_until)

    async def ack(self, claim: Claim, items: list[ClaimedItem]) -> int:
        """Drop deleted items; returns how many were still held by this claim."""
        if not items:
            return 0
        return int(await self._ack(keys=self._keys, args=[claim.token, *(item.member for item in items)]))

    async def fail(self, claim: Claim, items: list[ClaimedItem], error: str, now: float, *,
                   max_attempts: int, backoff: float, backoff_max: float) -> int:
        """Count a failed attempt; returns how many items moved to the dead-letter set."""
        if not items:
            return 0
        args = [claim.token, repr(now), max_attempts, repr(backoff), repr(backoff_max), error[:2000],
                *(item.member for item in items)]
        return int(await self._fail(keys=self._keys, args=args))

    async def release(self, claim: Claim, items: list[ClaimedItem], due: float) -> None:
        """Give items back due at `due` without counting an attempt."""
        if items:
            await self._release(keys=self._keys, args=[claim.token, repr(due), *(item.member for item in items)])

    async def next_due(self) -> float | None:
        first = await self.redis.zrange(self.due_key, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def pending(self) -> int:
        return int(await self.redis.zcard(self.due_key))

    async def dead(self) -> int:
        return int(await self.redis.zcard(self.dead_key))

    async def page(self, *, dead_letter: bool, size: int, token: str = "") -> Page:
        """One page in (score, member) order. The cursor is the last item shown, so removals between
        pages never make the listing skip or repeat an item."""
        key = self.dead_key if dead_letter else self.due_key
        rows: list[tuple[bytes, float]] = []
        if token:
            after_score, after_member = _decode_cursor(token)
            offset, chunk = 0, size + 64
            while len(rows) <= size:
                batch = await self.redis.zrangebyscore(key, after_score, "+inf", start=offset, num=chunk,
                                                       withscores=True)
                for member, score in batch:
                    if score > after_score or member.decode() > after_member:
                        rows.append((member, score))
                if len(batch) < chunk:
                    break
                offset += chunk
        else:
            rows = await self.redis.zrange(key, 0, size, withscores=True)
        more = len(rows) > size
        rows = rows[:size]
        members = [member for member, _ in rows]
        attempts = await self.redis.hmget(self._keys[2], members) if members else []
        errors = await self.redis.hmget(self._keys[3], members) if members else []
        entries = []
        for (member, score), tries, error in zip(rows, attempts, errors):
            bucket, object_key = split_member(member.decode())
            entries.append(Entry(bucket, object_key, float(score), int(tries or 0),
                                 (error or b"").decode(errors="replace")))
        next_token = _encode_cursor(entries[-1].due, member_of(entries[-1].bucket, entries[-1].key)) \
            if more else ""
        return Page(entries, next_token, int(await self.redis.zcard(key)))
