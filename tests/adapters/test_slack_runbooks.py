"""A runbook's checklist and approval from Slack buttons on its progress message, through the
real Bolt app and the fake Slack."""

from __future__ import annotations

from pathlib import Path

from bot.catalog import Catalog
from bot.runbooks import RunbookRunner
from tests.adapters.slack_harness import slack_rig
from tests.adapters.test_slack import declare
from tests.fakes import slack as fs
from tests.unit.test_runbooks import catalog_with


async def test_checklist_and_approval_from_slack_buttons(tmp_path: Path, catalog: Catalog) -> None:
    cat = catalog_with(catalog, tmp_path, {"runbooks": [{"name": "drill", "steps": [
        {"kind": "checklist", "items": ["look", "leap"]},
        {"kind": "approve"},
        {"kind": "message", "text": "approved and done"},
    ]}]})
    async with slack_rig(tmp_path, cat) as rig:
        await declare(rig)
        await rig.settle()
        channel = rig.incident_channel(1)["id"]
        runner = RunbookRunner(service=rig.service, store=rig.store)
        await rig.command("runbook run drill", channel=channel)
        await rig.settle()  # applied by the inbox worker; then the runner starts the run
        await runner.run_once()
        await rig.settle()

        def progress() -> dict[str, object]:
            return next(m for m in rig.fake.messages(channel)
                        if "Runbook drill · run 1 of #1" in m["text"])

        for item in ("1:1:1", "1:1:2"):
            await rig.post(fs.block_actions_body(
                "opsroom_runbook_check", item, channel_id=channel, message=progress()))
        await rig.settle()  # the inbox applies the clicks; then the run moves on
        await runner.run_once()
        await rig.settle()
        assert "Approval by the commander" in str(progress()["text"])
        await rig.post(fs.block_actions_body(
            "opsroom_runbook_approve", "1:1", channel_id=channel, message=progress(),
            user_id=fs.BOB, response_url=rig.fake.new_response_url()))
        await rig.settle()
        assert any(t.startswith("Only the commander (<@") for t in rig.ephemeral_texts()), (
            rig.ephemeral_texts())
        await rig.post(fs.block_actions_body(
            "opsroom_runbook_approve", "1:1", channel_id=channel, message=progress()))
        await rig.settle()
        await runner.run_once()
        await rig.settle()
        assert "✅ done" in str(progress()["text"])
        assert any("approved and done" in t for t in rig.bot_texts(channel))
