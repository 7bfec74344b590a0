"""Alert sink: plugin push, idempotency, fallback to messages, retries then dead letter."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from contracts import Contribution, DeadLetter, RiskAlert, RiskLevel, alert_id, decode, encode, keys
from moodle_connector.client import MoodleClient, RetryPolicy
from moodle_connector.sink import AlertSink
from riskstream.stack import Stack
from tests.moodle_connector.conftest import FAST, Topics, read_topic
from tests.moodle_connector.fake_moodle import FakeMoodle

SITE = "lab"
QUICK = RetryPolicy(attempts=3, base_s=0.01, max_s=0.02)


def make_alert(user: int = 7, trigger: int = 1507, site: str = SITE) -> RiskAlert:
    now = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    return RiskAlert(
        alert_id=alert_id(site, 2, user, "v0001", trigger, "high"),
        site=site,
        user_id=user,
        course_id=2,
        risk=0.81,
        level=RiskLevel.HIGH,
        threshold=0.7,
        model_version="v0001",
        contributions=[
            Contribution(feature="quiz", weight=0.3, text="second quiz attempt scored lower")
        ],
        day=21,
        trigger_event_id=trigger,
        event_time=now,
        created_at=now,
    )


def make_sink(
    client: MoodleClient, redis: Redis, producer: AIOKafkaProducer, topics: Topics
) -> AlertSink:
    return AlertSink(
        client, redis, producer, SITE, max_attempts=3, backoff=QUICK, dead_letter_topic=topics.dead
    )


async def test_push_is_idempotent_by_alert_id(
    fake: FakeMoodle,
    client: MoodleClient,
    aredis: Redis,
    producer: AIOKafkaProducer,
    topics: Topics,
) -> None:
    await client.site_info()
    sink = make_sink(client, aredis, producer, topics)
    alert = make_alert()
    assert await sink.handle(encode(alert)) == "pushed"
    assert await sink.handle(encode(alert)) == "duplicate"
    assert await sink.handle(encode(make_alert(user=8))) == "pushed"
    assert fake.push_calls == 2 and set(fake.pushed) == {
        alert.alert_id,
        make_alert(user=8).alert_id,
    }
    sent = fake.pushed[alert.alert_id]
    assert sent["courseid"] == "2" and sent["userid"] == "7" and sent["level"] == "high"
    assert "second quiz attempt" in sent["explanation"]
    # a restarted sink (fresh process, same Redis) still knows the alert went out
    again = make_sink(client, aredis, producer, topics)
    assert await again.handle(encode(alert)) == "duplicate" and fake.push_calls == 2


async def test_without_plugin_teachers_get_a_message(
    fake: FakeMoodle, aredis: Redis, producer: AIOKafkaProducer, topics: Topics
) -> None:
    fake.plugin_installed = False
    async with MoodleClient(fake.url, fake.token, retry=FAST) as client:
        info = await client.site_info()
        assert "local_riskstream_push_alerts" not in {f["name"] for f in info["functions"]}
        sink = make_sink(client, aredis, producer, topics)
        alert = make_alert()
        assert await sink.handle(encode(alert)) == "pushed"
        assert await sink.handle(encode(alert)) == "duplicate"
    assert fake.push_calls == 0
    assert [m["touserid"] for m in fake.messages] == ["3"]  # teacher1, from the roster
    assert fake.messages[0]["clientmsgid"].startswith(alert.alert_id)
    assert "high" in fake.messages[0]["text"]
    roster = json.loads(await aredis.get(keys.roster_key(SITE, 2)))
    assert roster["teachers"] == [3]


async def test_failing_push_is_retried_then_dead_lettered(
    stack: Stack, fake: FakeMoodle, aredis: Redis, producer: AIOKafkaProducer, topics: Topics
) -> None:
    async with MoodleClient(fake.url, fake.token, retry=RetryPolicy(2, 0.01, 0.02)) as client:
        await client.site_info()
        sink = make_sink(client, aredis, producer, topics)
        fake.faults.extend(["503"] * 3)  # first delivery: 2 HTTP tries fail, then a retry works
        assert await sink.handle(encode(make_alert())) == "pushed"
        assert sink.stats.retries == 1
        fake.faults.extend(["500"] * 6)  # 3 deliveries x 2 tries: all fail
        doomed = make_alert(user=9)
        assert (
            await sink.handle(encode(doomed), key=b"lab:9", where=(topics.alerts, 1, 42)) == "dead"
        )
        assert await sink.handle(b'{"not": "an alert"}') == "dead"
    dead = [
        decode(DeadLetter, v) for _, v in await read_topic(stack.bootstrap, topics.dead, 2) if v
    ]
    assert len(dead) == 2
    first = next(d for d in dead if d.key == "lab:9")
    assert first.stage == "connector.sink" and "after 3 attempts" in first.reason
    assert (first.source_topic, first.source_partition, first.source_offset) == (
        topics.alerts,
        1,
        42,
    )
    assert decode(RiskAlert, first.raw_bytes()) == doomed
    assert doomed.alert_id not in fake.pushed


async def test_sink_consumes_topic_and_commits(
    stack: Stack,
    fake: FakeMoodle,
    client: MoodleClient,
    aredis: Redis,
    producer: AIOKafkaProducer,
    topics: Topics,
) -> None:
    await client.site_info()
    alerts = [make_alert(user=u) for u in (5, 6, 7)]
    for a in [*alerts, alerts[0], make_alert(site="other-site")]:  # a replay and a foreign site
        await (
            await producer.send(
                topics.alerts, value=encode(a), key=f"{a.site}:{a.user_id}".encode()
            )
        )
    sink = make_sink(client, aredis, producer, topics)
    stop = asyncio.Event()
    group = f"sink-{topics.alerts}"
    task = asyncio.create_task(
        sink.run(stack.bootstrap, stop, topic=topics.alerts, group=group, session_timeout_ms=6000)
    )
    for _ in range(300):
        if sink.stats.pushed + sink.stats.duplicates + sink.stats.skipped >= 5:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert sink.stats.pushed == 3 and sink.stats.duplicates == 1 and sink.stats.skipped == 1
    assert set(fake.pushed) == {a.alert_id for a in alerts}
    # committed: a second sink in the same group starts after them; only a new alert is handled
    late = make_alert(user=20)
    await (await producer.send(topics.alerts, value=encode(late), key=b"lab:20"))
    again = make_sink(client, aredis, producer, topics)
    stop2 = asyncio.Event()
    t2 = asyncio.create_task(
        again.run(stack.bootstrap, stop2, topic=topics.alerts, group=group, session_timeout_ms=6000)
    )
    for _ in range(300):
        if again.stats.pushed:
            break
        await asyncio.sleep(0.05)
    stop2.set()
    await asyncio.wait_for(t2, 10)
    assert (again.stats.pushed, again.stats.duplicates, again.stats.skipped) == (1, 0, 0)
    assert fake.push_calls == 4 and late.alert_id in fake.pushed
