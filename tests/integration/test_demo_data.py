"""The demo's data: its flow is published once as the fallback, and a demo caller follows it."""

from datetime import datetime
from zoneinfo import ZoneInfo

from callcore.demo import DEMO_FLOW, DEMO_GRAPH, DEMO_MAILBOX, ensure_demo_data
from callcore.ivr import Outcome, validate_graph
from callcore.ivr.dry_services import DryServices
from callcore.sim.agi_channel import Caller, PressDuring
from callcore.sim.ivr_fixtures import node_registry
from callcore.sim.run import SimConfig

PARIS = ZoneInfo("Europe/Paris")


def test_the_demo_flow_validates_against_the_built_in_nodes():
    assert validate_graph(DEMO_GRAPH, node_registry()) == []


async def test_demo_data_is_created_once_with_the_flow_published_as_fallback(db_pool, tmp_path):
    first = await ensure_demo_data(db_pool, tmp_path)
    again = await ensure_demo_data(db_pool, tmp_path)
    assert first.startswith("demo admin account created") and "see" in again
    rows = await db_pool.fetch(
        "SELECT f.name, f.is_fallback, v.status, v.graph FROM flows f "
        "JOIN flow_versions v ON v.flow_id = f.id"
    )
    assert [(r["name"], r["is_fallback"], r["status"]) for r in rows] == [
        (DEMO_FLOW, True, "published")
    ]
    assert rows[0]["graph"] == DEMO_GRAPH
    assert await db_pool.fetchval("SELECT count(*) FROM dids WHERE flow_id IS NULL") == 3


async def test_a_caller_in_opening_hours_pressing_1_reaches_the_sales_queue(ivr_call):
    caller = Caller(dtmf=(PressDuring("demo-menu", "1"),))
    run = await ivr_call(
        DEMO_GRAPH,
        caller,
        services=DryServices(at=datetime(2026, 11, 24, 10, 0, tzinfo=PARIS)),
        simulator=SimConfig(mailboxes=frozenset({DEMO_MAILBOX})),
    )
    assert run.result.path[:5] == ("answer", "welcome", "hours", "menu", "sales")
    assert run.result.outcome in (Outcome.COMPLETED, Outcome.HANGUP)


async def test_a_caller_at_night_is_offered_the_voicemail(ivr_call):
    run = await ivr_call(
        DEMO_GRAPH,
        Caller(),
        services=DryServices(at=datetime(2026, 11, 24, 23, 0, tzinfo=PARIS)),
        simulator=SimConfig(mailboxes=frozenset({DEMO_MAILBOX})),
    )
    assert run.result.path == ("answer", "welcome", "hours", "voicemail", "bye")
    assert ("EXEC", "VoiceMail", f"{DEMO_MAILBOX},u") in run.record.commands
