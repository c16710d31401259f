"""What a page reaches besides the incident channel, with a fake clock driving the job worker:
a person's notify_webhook (over real HTTP), a direct message on a platform where the incident
has no channel (as a notice), and the channels an escalation step names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.http_client import AiohttpClient
from bot.catalog import Catalog
from bot.jobs import JobWorker
from bot.mirror import Backoff, Mirror
from bot.models import Incident
from bot.people import PersonSpec
from bot.policies import EscalationPolicy
from bot.ports import Actor, ChannelRef
from bot.schedules import Schedule
from bot.service import IncidentService, Reply
from bot.suggest import HeuristicSuggester
from storage.store import SqlStore
from tests.fakes.chat import RecordingChat
from tests.fakes.clock import FakeClock
from tests.fakes.http_target import Target, running_target

CAROL = Actor(platform="console", user_id="carol", name="carol", mention="@carol")
BOB_ON_SLACK = Actor(platform="slack", user_id="U0BOB000002", name="bob", mention="<@U0BOB000002>")
PRIMARY = Schedule.model_validate({"name": "primary", "timezone": "UTC", "layers": [
    {"users": ["alice"], "rotation": "weekly", "start": "2026-11-02"}]})  # alice, always
OPS = EscalationPolicy.model_validate({"name": "ops", "steps": [
    {"channels": ["#oncall-ops"], "after": "2m"},  # only a channel: valid, and waited out
    {"schedules": ["primary"], "channels": ["oncall-ops"], "after": "5m"},
]})
WEBHOOK_BODY = {"to": "+4915550000", "text": "#{incident} {title} [{severity}]: {text} {link}"}


@dataclass
class Rig:
    store: SqlStore
    console: RecordingChat
    slack: RecordingChat
    mirror: Mirror
    service: IncidentService
    worker: JobWorker
    clock: FakeClock
    target: Target
    channel: str = ""

    async def run(self, text: str, actor: Actor = CAROL) -> Reply:
        where = self.console.by_name(self.channel or "general")
        reply = await self.service.handle_text(text, actor=actor,
                                               where=ChannelRef("console", where.id))
        await self.tick()
        return reply

    async def tick(self, **delta: float) -> None:
        self.clock.advance(**delta)
        await self.worker.run_once()
        assert await self.mirror.drain(timeout=5)

    def lines(self) -> list[str]:
        return [t for t in self.console.texts(self.channel) if t[:1] in "📟⬆✅⚠"]

    async def incident(self) -> Incident:
        async with self.store.unit() as u:
            inc = await u.incident(1)
        assert inc is not None
        return inc


@pytest.fixture
async def rig(engine: AsyncEngine, catalog: Catalog, clock: FakeClock) -> AsyncIterator[Rig]:
    cat = catalog.model_copy(update={
        "people": [
            PersonSpec.model_validate({"name": "alice", "slack": "U0ALICE0001", "notify_webhook": {
                "url_env": "ALICE_SMS", "body": WEBHOOK_BODY}}),
            PersonSpec(name="bob", slack="U0BOB000002"),
            PersonSpec(name="carol"),
        ],
        "schedules": [PRIMARY],
        "escalation_policies": [OPS],
    })
    store = SqlStore(engine)
    console = RecordingChat(channels=("general", "oncall-ops"))
    slack = RecordingChat(platform="slack", channels=("oncall-ops",))
    http = AiohttpClient()
    async with running_target() as target:
        mirror = Mirror(store=store, ports={"console": console, "slack": slack}, catalog=cat,
                        backoff=Backoff(base=0.001, cap=0.01), http=http,
                        env={"ALICE_SMS": f"{target.url}/sms"})
        # Incidents get console channels only; Slack is connected too (DMs, named channels).
        service = IncidentService(store=store, catalog=cat, suggester=HeuristicSuggester(),
                                  clock=clock, notify=mirror.wake)
        worker = JobWorker(store=store, catalog=cat, record=service.record, clock=clock,
                           notify=mirror.wake, platforms=("console", "slack"),
                           public_url="https://ops.example.com/")
        r = Rig(store, console, slack, mirror, service, worker, clock, target)
        await r.run("declare checkout is down for everyone")
        r.channel = next(c.name for c in console.channels.values() if c.name.startswith("inc-1-"))
        yield r
        await http.close()


async def test_a_page_dms_on_a_platform_without_an_incident_channel_through_a_notice(
    rig: Rig,
) -> None:
    await rig.run("page @bob can you look at the db?")
    assert rig.lines() == ["📟 Paged @bob (step 1): can you look at the db?"]
    # The console DM is a delivery of the incident's console channel; Slack, where the
    # incident has no channel, gets the same message and button as a notice.
    [(console_user, on_console)] = rig.console.dms
    [(slack_user, on_slack)] = rig.slack.dms
    assert (console_user, slack_user) == ("@bob", "<@U0BOB000002>")
    assert on_console.text == "📟 Paged @bob (step 1): can you look at the db?"
    assert on_slack.text == "📟 Paged <@U0BOB000002> (step 1): can you look at the db?"
    assert on_slack.buttons == on_console.buttons
    [ack] = on_slack.buttons
    assert (ack.label, ack.action, ack.value) == ("Acknowledge", "ack", "1")
    await rig.tick(minutes=30)
    assert len(rig.slack.dms) == 1  # sent once
    assert rig.target.seen == []  # bob has no notify_webhook
    acked = await rig.service.handle_oncall_text(
        "ack", actor=BOB_ON_SLACK, where=ChannelRef("slack", "D-bob"))
    assert acked.text == "Acknowledged your pages for #1; paging stopped."


async def test_a_page_calls_the_persons_notify_webhook_once_with_the_fields_filled(
    rig: Rig,
) -> None:
    rig.target.plan = [(502, "bad gateway"), (200, "{}")]  # retried
    await rig.run("page ops")
    await rig.tick(minutes=2)  # step 2 pages alice
    inc = await rig.incident()
    line = "⬆️ No acknowledgement after 2m: paging @alice (step 2)"
    assert line in rig.lines()
    assert [s["body"] for s in rig.target.seen] == [{
        "to": "+4915550000",
        "text": f"#1 {inc.title} [{inc.severity}]: {line} https://ops.example.com/incidents/1",
    }] * 2
    assert rig.target.seen[0]["path"] == "/sms"
    keys = {s["headers"]["Idempotency-Key"] for s in rig.target.seen}
    assert keys == {"opsroom-page:1:0:1:alice:webhook"}  # escalation, round, step, person
    await rig.tick(minutes=30)
    assert len(rig.target.seen) == 2  # nothing more
    # alice has a Slack account and the incident no Slack channel: a Slack DM too.
    assert [who for who, _ in rig.slack.dms] == ["<@U0ALICE0001>"]


async def test_an_escalation_step_posts_in_its_channels_on_every_connected_platform(
    rig: Rig,
) -> None:
    await rig.run("page ops the db is on fire")
    inc = await rig.incident()
    head = f"📟 #1 {inc.title}: step 1 of ops ({inc.severity.upper()})"
    link = "https://ops.example.com/incidents/1"
    assert rig.lines() == ["📟 Step 1 of ops: posted in #oncall-ops"]
    assert rig.console.texts("oncall-ops") == [f"{head}: the db is on fire\n{link}"]
    assert rig.slack.texts("oncall-ops") == [f"{head}: the db is on fire\n{link}"]
    assert rig.console.dms == [] and rig.slack.dms == []  # nobody paged yet

    await rig.tick(minutes=1, seconds=59)
    assert len(rig.lines()) == 1  # a channel step waits its `after` like any other
    await rig.tick(seconds=1)
    assert rig.lines()[1:] == [
        "⬆️ No acknowledgement after 2m: paging @alice (step 2): the db is on fire",
        "📟 Step 2 of ops: posted in #oncall-ops",
    ]
    step2 = f"📟 #1 {inc.title}: step 2 of ops ({inc.severity.upper()}), paging"
    assert rig.console.texts("oncall-ops")[1] == f"{step2} @alice: the db is on fire\n{link}"
    assert rig.slack.texts("oncall-ops")[1] == (
        f"{step2} <@U0ALICE0001>: the db is on fire\n{link}")


def test_a_step_needs_someone_or_a_channel() -> None:
    with pytest.raises(ValueError, match="a step needs schedules, people or channels"):
        EscalationPolicy.model_validate({"name": "x", "steps": [{"after": "1m"}]})
    with pytest.raises(ValueError, match="is not a channel name"):
        EscalationPolicy.model_validate({"name": "x", "steps": [{"channels": ["#"]}]})


def test_the_incident_link_is_its_web_page_else_its_opened_chat_channel() -> None:
    from bot.models import ChannelLink, LinkState
    from bot.paging import incident_link

    inc = Incident(number=12, title="Checkout down", severity="sev1", priority="p1",
                   type="outage", declared_by="@carol", declared_on="console")
    slack = ChannelLink(incident_id=1, platform="slack", workspace="T0OPS", channel_id="C012",
                        state=LinkState.OPEN)
    discord = ChannelLink(incident_id=1, platform="discord", workspace="9001", channel_id="77",
                          state=LinkState.OPEN)
    pending = ChannelLink(incident_id=1, platform="slack", workspace="T0OPS")
    assert incident_link(inc, [slack], "https://ops.example.com/") == (
        "https://ops.example.com/incidents/12")
    assert incident_link(inc, [pending, slack], None) == "https://app.slack.com/client/T0OPS/C012"
    assert incident_link(inc, [discord], None) == "https://discord.com/channels/9001/77"
    assert incident_link(inc, [pending], None) == ""
