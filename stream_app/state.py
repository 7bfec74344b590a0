"""Per-student state in Redis: key layout, codec, and one pipelined read and write per batch.

Layout (documented in ARCHITECTURE.md, read by the API):

- ``rs:st:{site}:{course}:{user}`` hash. Model state tensors under their own names
  (``h``, ``c``, ``static``, ... float32 bytes, one row; ``m_`` prefix on a name clash),
  ``acc`` open-day accumulator (float32), ``day`` open day index, ``d0`` day of the
  student's first event, ``win`` rolling window of committed day vectors
  (float32 [<=W, n_day]), ``last_id`` last applied event id,
  ``ver`` model version, ``sp`` feature-spec hash (12 hex), ``risk``, ``level``, ``upd``
  (epoch s), ``alert`` (JSON AlertState), ``traj`` daily risk history (float16, one per
  committed day, capped).
- ``rs:rank:{site}:{course}`` sorted set user -> risk; ``rs:alerts`` stream of RiskAlert JSON;
  ``rs:cal:{site}:{course}`` CourseCalendar JSON; ``rs:prof:{site}:{course}:{user}``
  StudentProfile JSON; ``rs:courses:{site}`` set of course ids.
- ``rs:cap:{site}:{course}:{partition}`` hash, the alert policy's book per course and
  partition: ``n{day}`` students enrolled (state created) that day, ``u{day}`` unenrolled,
  ``a{day}`` act-on alerts admitted, ``rel`` last course day released;
  ``rs:cand:{site}:{course}:{partition}:{day}`` sorted set ``user:trigger`` -> held risk,
  the day's candidates until released.
- ``rs:site:{site}:id_hi`` highest event id applied for the site (plausibility of new ids);
  ``rs:counts`` hash of event outcomes (sent, applied, duplicate, dead_letter), incremented
  in the same script as the states, so the sum can be checked across crashes and restarts.

The batch write is one Lua script that validates everything (key types, finite scores)
before its first write, so a batch's states, ranks and alert-stream entries land together
or not at all (Redis does not roll a script back after an error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any, NamedTuple

import numpy as np
import redis.asyncio as aredis
from redis.exceptions import NoScriptError

from contracts import CourseCalendar, LmsEvent, encode
from stream_app.alerting import AlertState

ALERTS_STREAM = "rs:alerts"
COUNTS_KEY = "rs:counts"
ALERTS_MAXLEN = 10_000
TRAJ_CAP = 400  # days of risk history kept per student (a course is at most ~270 days)
RESERVED = frozenset(
    {"acc", "day", "d0", "win", "last_id", "ver", "sp", "risk", "level", "upd", "alert", "traj"}
)


class StudentKey(NamedTuple):
    site: str
    course: int
    user: int

    @property
    def redis_key(self) -> str:
        return f"rs:st:{self.site}:{self.course}:{self.user}"

    @property
    def profile_key(self) -> str:
        return f"rs:prof:{self.site}:{self.course}:{self.user}"

    @property
    def rank_key(self) -> str:
        return rank_key(self.site, self.course)

    @classmethod
    def of(cls, ev: LmsEvent) -> StudentKey:
        return cls(ev.site, ev.course_id, ev.user_id)


def calendar_key(site: str, course: int) -> str:
    return f"rs:cal:{site}:{course}"


def courses_key(site: str) -> str:
    return f"rs:courses:{site}"


def site_ids_key(site: str) -> str:
    return f"rs:site:{site}:id_hi"


def caps_key(site: str, course: int, partition: int) -> str:
    return f"rs:cap:{site}:{course}:{partition}"


def candidates_key(site: str, course: int, partition: int, day: int) -> str:
    return f"rs:cand:{site}:{course}:{partition}:{day}"


def rank_key(site: str, course: int) -> str:
    return f"rs:rank:{site}:{course}"


def default_calendar(site: str, course: int, first_event: datetime) -> CourseCalendar:
    """Fallback when no calendar was published: the course starts at midnight UTC of the
    first event seen for it. Written back with SET NX so every worker agrees on day 0."""
    day0 = datetime.combine(first_event.astimezone(UTC).date(), time(0), tzinfo=UTC)
    return CourseCalendar(site=site, course_id=course, start=day0, name="(default calendar)")


@dataclass
class StudentState:
    """Decoded per-student state. ``day is None`` means a student never seen before."""

    model_state: dict[str, np.ndarray] = field(default_factory=dict)
    acc: np.ndarray | None = None
    day: int | None = None
    d0: int = 0
    win: np.ndarray | None = None
    last_id: int = -1
    ver: str = ""
    spec: str = ""
    risk: float = 0.0
    level: str = "low"
    upd: float = 0.0
    alert: AlertState = field(default_factory=AlertState)
    traj: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float16))

    @property
    def is_new(self) -> bool:
        return self.day is None


def _field_name(state_key: str) -> str:
    """Model state tensors keep their names (``h``, ``c``, ``static``) unless one collides
    with a state field (CnnLstmRisk's ``win`` becomes ``m_win``)."""
    return f"m_{state_key}" if state_key in RESERVED or state_key.startswith("m_") else state_key


def _state_name(field_name: str) -> str:
    return field_name[2:] if field_name.startswith("m_") else field_name


def _f32(raw: bytes | None) -> np.ndarray | None:
    if raw is None:
        return None
    return np.frombuffer(raw, dtype=np.float32).copy()


def decode_state(raw: dict[bytes, bytes], n_day: int) -> StudentState:
    """Bytes from HGETALL -> StudentState; shapes are checked later against the model."""
    if not raw:
        return StudentState()
    g = {k.decode(): v for k, v in raw.items()}
    st = StudentState()
    for name, val in g.items():
        if name not in RESERVED:
            st.model_state[_state_name(name)] = np.frombuffer(val, dtype=np.float32).copy()
    st.acc = _f32(g.get("acc"))
    st.day = int(g["day"]) if "day" in g else None
    st.d0 = int(g.get("d0", b"0"))
    win = _f32(g.get("win"))
    if win is not None and n_day > 0 and win.size % n_day == 0:
        st.win = win.reshape(-1, n_day)
    st.last_id = int(g.get("last_id", b"-1"))
    st.ver = g.get("ver", b"").decode()
    st.spec = g.get("sp", b"").decode()
    st.risk = float(g.get("risk", b"0"))
    st.level = g.get("level", b"low").decode()
    st.upd = float(g.get("upd", b"0"))
    st.alert = AlertState.from_json(g.get("alert"))
    traj = g.get("traj")
    if traj:
        st.traj = np.frombuffer(traj, dtype=np.float16).copy()
    return st


def encode_state(
    st: StudentState, full: bool, alert: bool = True
) -> dict[str, bytes | str | int | float]:
    """Fields to HSET (only what can have changed, to keep the write small). ``full`` also
    writes model state, window, trajectory, version (they change when a day is committed
    or the student is (re)initialised); ``alert`` the alert state."""
    out: dict[str, bytes | str | int | float] = {
        "day": int(st.day if st.day is not None else 0),
        "last_id": st.last_id,
        "risk": repr(float(st.risk)),
        "level": st.level,
        "upd": round(st.upd, 3),
    }
    if alert or full:
        out["alert"] = st.alert.to_json()
    if st.acc is not None:
        out["acc"] = np.ascontiguousarray(st.acc, dtype=np.float32).tobytes()
    if full:
        out.update(d0=st.d0, ver=st.ver, sp=st.spec)
        for name, arr in st.model_state.items():
            out[_field_name(name)] = np.ascontiguousarray(arr, dtype=np.float32).tobytes()
        if st.win is not None:
            out["win"] = np.ascontiguousarray(st.win, dtype=np.float32).tobytes()
        out["traj"] = np.ascontiguousarray(st.traj[-TRAJ_CAP:], dtype=np.float16).tobytes()
    return out


# One round trip each way, whatever the batch size: the read and the write are Lua scripts
# (a per-command pipeline costs ~25 us of client time per command in redis-py). Scripts run
# atomically, so a batch's write lands completely or not at all. Keys are passed in ARGV, so
# this targets a single Redis (or a cluster with all keys in one slot), as the worker does.
_READ_LUA = """
local n = tonumber(ARGV[1])
local out = {}
for i = 2, n + 1 do out[#out + 1] = redis.call('HGETALL', ARGV[i]) end
for i = n + 2, #ARGV do out[#out + 1] = redis.call('GET', ARGV[i]) or '' end
return out
"""
_WRITE_LUA = """
local function refuse(msg)
  return redis.error_reply('riskstream: ' .. msg .. '; nothing written')
end
local function kind_ok(key, want)
  local t = redis.call('TYPE', key)['ok']
  return t == 'none' or t == want, t
end
local function finite(v)
  local x = tonumber(v)
  return x ~= nil and x == x and x ~= math.huge and x ~= -math.huge
end
-- pass 1: validate everything before the first write
local i = 1
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local ok, t = kind_ok(ARGV[i], 'hash')
  if not ok then return refuse(ARGV[i] .. ' is a ' .. t .. ', not a hash') end
  i = i + 2 + 2 * tonumber(ARGV[i + 1])
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local ok, t = kind_ok(ARGV[i], 'zset')
  if not ok then return refuse(ARGV[i] .. ' is a ' .. t .. ', not a zset') end
  if not finite(ARGV[i + 1]) then return refuse('score ' .. ARGV[i + 1] .. ' is not finite') end
  i = i + 3
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local ok, t = kind_ok(ARGV[i], 'set')
  if not ok then return refuse(ARGV[i] .. ' is a ' .. t .. ', not a set') end
  i = i + 2
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local ok, t = kind_ok(ARGV[i], 'string')
  if not ok then return refuse(ARGV[i] .. ' is a ' .. t .. ', not a string') end
  if not finite(ARGV[i + 1]) then return refuse('id ' .. ARGV[i + 1] .. ' is not a number') end
  i = i + 2
end
n = tonumber(ARGV[i]); i = i + 1
if n > 0 then
  local ok, t = kind_ok(KEYS[2], 'hash')
  if not ok then return refuse(KEYS[2] .. ' is a ' .. t .. ', not a hash') end
end
i = i + 2 * n
n = tonumber(ARGV[i])
if n > 0 then
  local ok, t = kind_ok(KEYS[1], 'stream')
  if not ok then return refuse(KEYS[1] .. ' is a ' .. t .. ', not a stream') end
end
i = i + 2 + n
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local ok, t = kind_ok(ARGV[i], 'hash')
  if not ok then return refuse(ARGV[i] .. ' is a ' .. t .. ', not a hash') end
  if not finite(ARGV[i + 2]) then return refuse('count ' .. ARGV[i + 2] .. ' is not a number') end
  i = i + 3
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local ok, t = kind_ok(ARGV[i], 'zset')
  if not ok then return refuse(ARGV[i] .. ' is a ' .. t .. ', not a zset') end
  i = i + 2
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local ok, t = kind_ok(ARGV[i], 'zset')
  if not ok then return refuse(ARGV[i] .. ' is a ' .. t .. ', not a zset') end
  if not finite(ARGV[i + 1]) then return refuse('score ' .. ARGV[i + 1] .. ' is not finite') end
  i = i + 3
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local ok, t = kind_ok(ARGV[i], 'hash')
  if not ok then return refuse(ARGV[i] .. ' is a ' .. t .. ', not a hash') end
  i = i + 3
end
-- pass 2: write
i = 1
local function nxt() local v = ARGV[i]; i = i + 1; return v end
n = tonumber(nxt())
for _ = 1, n do
  local key = nxt(); local nf = tonumber(nxt())
  redis.call('HSET', key, unpack(ARGV, i, i + 2 * nf - 1))
  i = i + 2 * nf
end
n = tonumber(nxt())
for _ = 1, n do
  local key = nxt(); local score = nxt(); local member = nxt()
  redis.call('ZADD', key, score, member)
end
n = tonumber(nxt())
for _ = 1, n do local key = nxt(); redis.call('SADD', key, nxt()) end
n = tonumber(nxt())
for _ = 1, n do
  local key = nxt(); local id = nxt()
  if tonumber(id) > tonumber(redis.call('GET', key) or '-1') then redis.call('SET', key, id) end
end
n = tonumber(nxt())
for _ = 1, n do local f = nxt(); redis.call('HINCRBY', KEYS[2], f, nxt()) end
n = tonumber(nxt())
local maxlen = nxt()
for _ = 1, n do redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'alert', nxt()) end
n = tonumber(nxt())
for _ = 1, n do
  local key = nxt(); local f = nxt(); redis.call('HINCRBY', key, f, tonumber(nxt()))
end
n = tonumber(nxt())
for _ = 1, n do local key = nxt(); redis.call('ZREM', key, nxt()) end
n = tonumber(nxt())
for _ = 1, n do
  local key = nxt(); local score = nxt(); redis.call('ZADD', key, score, nxt())
end
n = tonumber(nxt())
for _ = 1, n do local key = nxt(); local f = nxt(); redis.call('HSET', key, f, nxt()) end
n = tonumber(nxt())
for _ = 1, n do redis.call('DEL', nxt()) end
return 1
"""


class _Scripts:
    """SHA1-addressed scripts (EVALSHA, falling back to EVAL after a Redis restart)."""

    def __init__(self) -> None:
        import hashlib

        self.read_sha = hashlib.sha1(_READ_LUA.encode()).hexdigest()
        self.write_sha = hashlib.sha1(_WRITE_LUA.encode()).hexdigest()

    async def call(
        self, r: aredis.Redis, sha: str, body: str, keys: list[str], args: list[Any]
    ) -> Any:
        try:
            return await r.evalsha(sha, len(keys), *keys, *args)  # type: ignore[misc]
        except NoScriptError:
            return await r.eval(body, len(keys), *keys, *args)  # type: ignore[misc]


_SCRIPTS = _Scripts()


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    it = iter(flat)
    return dict(zip(it, it, strict=True))


@dataclass
class BatchRead:
    states: dict[StudentKey, dict[bytes, bytes]]
    calendars: dict[tuple[str, int], bytes | None]
    profiles: dict[StudentKey, bytes | None]


async def read_site_ids(r: aredis.Redis, sites: list[str]) -> dict[str, int]:
    """Highest applied event id per site (sites never applied are absent)."""
    if not sites:
        return {}
    raw = await r.mget([site_ids_key(s) for s in sites])
    return {s: int(v) for s, v in zip(sites, raw, strict=True) if v is not None}


async def read_batch(
    r: aredis.Redis, students: list[StudentKey], courses: list[tuple[str, int]]
) -> BatchRead:
    """One round trip: every student's hash and profile, every course's calendar."""
    args: list[Any] = [len(students)]
    args += [k.redis_key for k in students]
    args += [k.profile_key for k in students]
    args += [calendar_key(site, course) for site, course in courses]
    res: list[Any] = await _SCRIPTS.call(r, _SCRIPTS.read_sha, _READ_LUA, [], args)
    n = len(students)
    states = {k: _pairs(res[i]) for i, k in enumerate(students)}
    profiles = {k: res[n + i] or None for i, k in enumerate(students)}
    cals = {c: res[2 * n + j] or None for j, c in enumerate(courses)}
    return BatchRead(states, cals, profiles)


async def ensure_calendars(
    r: aredis.Redis, defaults: dict[tuple[str, int], CourseCalendar]
) -> dict[tuple[str, int], bytes]:
    """SET NX the default calendars, then read back what won (another worker may have set
    one first). Only runs for courses without a calendar, so rarely."""
    pipe = r.pipeline(transaction=False)
    order = list(defaults)
    for site, course in order:
        pipe.set(calendar_key(site, course), encode(defaults[(site, course)]), nx=True)
    for site, course in order:
        pipe.get(calendar_key(site, course))
    res = await pipe.execute()
    return {c: res[len(order) + i] for i, c in enumerate(order)}


@dataclass
class BatchWrite:
    states: dict[StudentKey, dict[str, bytes | str | int | float]] = field(default_factory=dict)
    ranks: dict[StudentKey, float] = field(default_factory=dict)
    alerts: list[bytes] = field(default_factory=list)
    unranks: list[StudentKey] = field(default_factory=list)  # unenrolled: off the ranking
    hincrs: list[tuple[str, str, int]] = field(default_factory=list)  # policy book counts
    zadds: list[tuple[str, float, str]] = field(default_factory=list)  # alert candidates
    hsets: list[tuple[str, str, Any]] = field(default_factory=list)
    dels: list[str] = field(default_factory=list)
    site_ids: dict[str, int] = field(default_factory=dict)  # highest applied id per site
    counts: dict[str, int] = field(default_factory=dict)  # event outcomes -> rs:counts


def check_write(w: BatchWrite) -> None:
    """Refuse a batch write holding a non-finite number (ValueError) before anything is
    written; the Lua script checks again, with the key types, before its first write."""
    for k, risk in w.ranks.items():
        if not math.isfinite(risk):
            raise ValueError(f"rank of {k.redis_key} is {risk!r}, not finite")
    for k, mapping in w.states.items():
        for f, v in mapping.items():
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{k.redis_key} field {f} is {v!r}, not finite")
        text = mapping.get("risk")
        if isinstance(text, str) and not math.isfinite(float(text)):
            raise ValueError(f"{k.redis_key} risk is {text}, not finite")


async def write_batch(r: aredis.Redis, w: BatchWrite) -> None:
    """One atomic script: states (HSET), ranking (ZADD), course sets, site id range, outcome
    counts (HINCRBY), alert stream (XADD); validated before its first write."""
    args: list[Any] = [len(w.states)]
    for k, mapping in w.states.items():
        args += [k.redis_key, len(mapping)]
        for f, v in mapping.items():
            args += [f, v]
    args.append(len(w.ranks))
    for k, risk in w.ranks.items():
        args += [k.rank_key, repr(float(risk)), str(k.user)]
    courses = sorted({(k.site, k.course) for k in w.ranks})
    args.append(len(courses))
    for site, course in courses:
        args += [courses_key(site), course]
    args.append(len(w.site_ids))
    for site, hi in w.site_ids.items():
        args += [site_ids_key(site), str(int(hi))]
    counts = {f: int(n) for f, n in w.counts.items() if n}
    args.append(len(counts))
    for f, n in counts.items():
        args += [f, n]
    args += [len(w.alerts), ALERTS_MAXLEN, *w.alerts]
    args.append(len(w.hincrs))
    for key, f, n in w.hincrs:
        args += [key, f, n]
    args.append(len(w.unranks))
    for k in w.unranks:
        args += [k.rank_key, str(k.user)]
    args.append(len(w.zadds))
    for key, score, member in w.zadds:
        args += [key, repr(float(score)), member]
    args.append(len(w.hsets))
    for key, f, v in w.hsets:
        args += [key, f, v]
    args.append(len(w.dels))
    args += w.dels
    await _SCRIPTS.call(r, _SCRIPTS.write_sha, _WRITE_LUA, [ALERTS_STREAM, COUNTS_KEY], args)


class _FastConnection(aredis.Connection):
    """Packs commands with hiredis (C) instead of redis-py's pure-Python asyncio packer."""

    def pack_command(self, *args: Any) -> list[bytes]:
        import hiredis

        if isinstance(args[0], str):
            args = tuple(args[0].encode().split()) + args[1:]
        packed: Any = tuple(bytes(a) if isinstance(a, memoryview) else a for a in args)
        return [hiredis.pack_command(packed)]

    def pack_commands(self, commands: Any) -> list[bytes]:
        return [b"".join(c for cmd in commands for c in self.pack_command(*cmd))]


def connect(url: str, **kw: Any) -> aredis.Redis:
    """The worker's Redis client (hiredis packing when hiredis is installed)."""
    try:
        import hiredis  # noqa: F401

        pool = aredis.ConnectionPool.from_url(url, connection_class=_FastConnection, **kw)
    except ImportError:
        pool = aredis.ConnectionPool.from_url(url, **kw)
    return aredis.Redis(connection_pool=pool)
