"""The Slack edge: Bolt listeners that store Slack input, and its applier for the inbox worker.

Every listener checks what its response must carry (a malformed command's usage, a modal's field
errors), stores the input in the durable inbox (adapters/inbox.py), and only then acknowledges;
the inbox worker applies it later through `prepare` (platform reads) and the service, and the
answer goes back through the request's `response_url` or as an ephemeral message. Opening and
updating modals changes nothing in the record: those are done at once and never stored.
Bolt runs with `process_before_response`, so a listener's acknowledgement is sent only when
the listener returns: after the input is committed.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.inbox import Answer, Inbox, Receipt, Step, Transient, queued_note
from adapters.slack.blocks import (
    ACTION_PREFIX,
    DECLARE_CALLBACK,
    FIELD_BLOCK,
    KEY_EVENT_CALLBACK,
    TIMELINE_PICK_CALLBACK,
    TOP_FIELDS,
    TYPE_ACTION,
    button_action,
    carried_sources,
    declare_modal,
    field_block,
    initial_value,
    key_event_modal,
    message_blocks,
    pick_incident_modal,
    read_metadata,
    same_value,
    state_value,
)
from adapters.slack.chat import SlackChat
from bot import commands as c
from bot.catalog import Catalog
from bot.models import InboxItem
from bot.oncall_commands import parse_oncall
from bot.ports import Actor, ChannelRef, FieldSource, Store, Suggestion
from bot.render import fit
from bot.service import IncidentService, Reply, ServiceError, coerce_field

logger = logging.getLogger(__name__)

PLATFORM = "slack"
DECLARE_SHORTCUT = "opsroom_declare_incident"
TIMELINE_SHORTCUT = "opsroom_add_to_timeline"
SUGGEST_WAIT = 0.25  # seconds to wait for a suggestion before opening the modal without one
# Thread replies that are timeline entries: plain ones, "also send to channel", and files.
THREAD_SUBTYPES = (None, "thread_broadcast", "file_share")
# What a stored body never keeps: the verification token; the response_url is kept apart
# (InboxItem.reply_to) and forgotten once the row is applied.
_NOT_STORED = frozenset({"token", "response_url", "response_urls"})
# slack_sdk logs a webhook's URL (a response_url: a secret) at DEBUG.
logging.getLogger("slack_sdk.webhook").setLevel(logging.INFO)


def ts_time(ts: str) -> datetime:
    return datetime.fromtimestamp(float(ts), tz=UTC)


class SlackEdge:
    """The Bolt app and what its listeners share: the service, the catalog, a user-name cache."""

    def __init__(
        self,
        *,
        service: IncidentService,
        store: Store,
        catalog: Catalog,
        client: AsyncWebClient,
        signing_secret: str,
        inbox: Inbox,
    ) -> None:
        self.service = service
        self.store = store
        self.catalog = catalog
        self.client = client
        self.inbox = inbox
        self.chat = SlackChat(client)
        self.names: dict[str, str] = {}
        self.bot_user_id: str | None = None
        self.team_id = ""
        # Modals waiting for a slow suggestion to fill them in: UI only, nothing in the record
        # depends on them (a modal left unfilled still submits what the person typed).
        self._fills: set[asyncio.Task[None]] = set()
        self._hooks: aiohttp.ClientSession | None = None  # for response_urls, kept open
        self.app = AsyncApp(
            client=client,
            signing_secret=signing_secret,
            raise_error_for_unhandled_request=False,
            process_before_response=True,
        )
        self._register()

    async def check_auth(self) -> None:
        """`auth.test`; raises when the token is wrong or Slack cannot be reached."""
        result = await self.client.auth_test()
        self.bot_user_id = result.get("user_id")
        self.team_id = result.get("team_id") or ""
        if self.bot_user_id:  # the bot is no person to assign things to
            self.service.refuse_mentions(f"<@{self.bot_user_id}>")

    async def close(self) -> None:
        """Stop filling modals in (they keep what they show); close the answers' session."""
        for task in list(self._fills):
            task.cancel()
        await asyncio.gather(*self._fills, return_exceptions=True)
        if self._hooks is not None:
            await self._hooks.close()

    # --- helpers ------------------------------------------------------------------------

    async def actor(self, user_id: str, name: str | None = None) -> Actor:
        if name:
            self.names.setdefault(user_id, name)
        if user_id not in self.names:
            try:
                info = await self.client.users_info(user=user_id)
                profile = info["user"].get("profile", {})
                self.names[user_id] = (
                    profile.get("display_name")
                    or info["user"].get("real_name")
                    or info["user"].get("name")
                    or user_id
                )
            except SlackApiError:
                return Actor(PLATFORM, user_id, user_id, f"<@{user_id}>")
        return Actor(PLATFORM, user_id, self.names[user_id], f"<@{user_id}>")

    def where(self, channel_id: str, thread_ts: str | None = None, team: str = "") -> ChannelRef:
        return ChannelRef(PLATFORM, channel_id, thread_id=thread_ts, workspace=team or self.team_id)

    async def tell(self, user_id: str, channel_id: str, text: str) -> None:
        """An ephemeral message to one person in a channel (where there is one)."""
        if not channel_id:
            return
        try:
            await self.client.chat_postEphemeral(channel=channel_id, user=user_id, text=fit(text))
        except SlackApiError as exc:
            logger.warning(
                "slack: could not tell %s in %s: %s",
                user_id,
                channel_id,
                exc.response.get("error") if exc.response is not None else exc,
            )

    async def respond(self, reply_to: str | None, reply: Reply, user: str, channel: str) -> None:
        """Answer through the request's response_url; without one, as an ephemeral message."""
        if not reply_to:
            await self.tell(user, channel, reply.text)
            return
        blocks = message_blocks(reply.message) if reply.message else None
        if self._hooks is None or self._hooks.closed:
            self._hooks = aiohttp.ClientSession()  # one for every answer: no connect per answer
        response = await AsyncWebhookClient(reply_to, session=self._hooks).send(
            text=fit(reply.text), blocks=blocks, response_type="ephemeral", replace_original=False
        )
        if response.status_code >= 300:
            logger.warning("slack: an answer was refused (HTTP %d)", response.status_code)

    async def store_input(
        self,
        *,
        kind: str,
        key: str,
        channel: str,
        body: dict[str, Any],
        reply_to: str | None = None,
    ) -> Receipt:
        """Store an input in the inbox (committed) before it is acknowledged."""
        payload = {k: v for k, v in body.items() if k not in _NOT_STORED}
        try:
            return await self.inbox.put(
                platform=PLATFORM,
                key=key,
                queue=f"{PLATFORM}:{channel or '-'}",
                kind=kind,
                payload=payload,
                reply_to=reply_to,
            )
        except Exception as exc:
            raise NotStored(f"{kind} not stored ({type(exc).__name__})") from exc

    async def stored_ack(self, ack: Any, receipt: Receipt) -> None:
        """Acknowledge a stored input; when the inbox is far behind, say so (ephemeral)."""
        if receipt.new and receipt.behind:
            await ack(text=queued_note(receipt.ahead), response_type="ephemeral")
        else:
            await ack()

    # --- registration -------------------------------------------------------------------

    def _register(self) -> None:
        app = self.app
        app.command("/incident")(self.on_command)
        app.command("/oncall")(self.on_oncall)
        app.shortcut(DECLARE_SHORTCUT)(self.on_declare_shortcut)
        app.shortcut(TIMELINE_SHORTCUT)(self.on_timeline_shortcut)
        app.view(DECLARE_CALLBACK)(self.on_declare_submit)
        app.view(KEY_EVENT_CALLBACK)(self.on_key_event_submit)
        app.view(TIMELINE_PICK_CALLBACK)(self.on_timeline_pick_submit)
        app.action(TYPE_ACTION)(self.on_type_changed)
        names = ("ack", "resolve", "reopen", "action_done", "key_event", "runbook_check",
                 "runbook_approve", *c.TRIAGE_ACTIONS)
        # A repeated button in one message has ".2", ".3"... after its action (blocks.py).
        app.action(re.compile(rf"^{ACTION_PREFIX}(?:{'|'.join(names)})(?:\.\d+)?$"))(
            self.on_button
        )
        app.event("message")(self.on_message)
        app.event("reaction_added")(self.on_reaction)
        app.event("reaction_removed")(self.on_reaction)
        app.event("member_joined_channel")(self.on_member_joined)
        app.error(self.on_error)

    async def on_error(self, error: Exception, body: dict[str, Any]) -> None:
        if isinstance(error, NotStored):  # the database is away: Slack (or the person) retries
            logger.warning("slack: %s; not acknowledged", error)
            return
        if isinstance(error, SlackApiError):  # a modal that could not be opened or updated
            logger.warning(
                "slack: %s while handling %s", _api_error(error),
                body.get("type") or body.get("command"),
            )
            return
        logger.error(
            "slack: %s while handling %s",
            type(error).__name__,
            body.get("type") or body.get("command"),
            exc_info=error,
        )

    # --- intake: what is stored, and what is answered at once -----------------------------

    async def on_command(self, ack: Any, command: dict[str, Any]) -> None:
        text = (command.get("text") or "").strip()
        try:
            parsed = c.parse(text) if text else None
        except c.UsageError as exc:
            await ack(text=str(exc), response_type="ephemeral")
            return
        user, channel = command["user_id"], command["channel_id"]
        if parsed is None or isinstance(parsed, c.Declare):
            await ack()
            description = parsed.description if parsed else ""
            type_hint = parsed.type if parsed else None
            await self.open_declare(command["trigger_id"], user, channel, description, type_hint)
            return
        receipt = await self.store_input(
            kind="command",
            key=f"command:{command['trigger_id']}",
            channel=channel,
            body=command,
            reply_to=command.get("response_url"),
        )
        await self.stored_ack(ack, receipt)

    async def on_declare_submit(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        state = view["state"]
        type_name = state_value(state, "type") or ""
        itype = self.catalog.incident_type(type_name)
        errors: dict[str, str] = {}
        for f in itype.fields if itype else []:
            raw = state_value(state, FIELD_BLOCK + f.name)
            if raw in (None, "", []):
                if f.required:
                    errors[FIELD_BLOCK + f.name] = f"{f.display} is required"
                continue
            if f.kind.value == "user":
                raw = f"<@{raw}>"
            try:
                coerce_field(f, raw, not_people=self.service.not_people)
            except ServiceError as exc:
                errors[FIELD_BLOCK + f.name] = str(exc)
        if not (state_value(state, "title") or "").strip():
            errors["title"] = "Give the incident a short title"
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await self._store_view(ack, "declare", body, view)

    async def on_key_event_submit(
        self, ack: Any, body: dict[str, Any], view: dict[str, Any]
    ) -> None:
        if not (state_value(view["state"], "text") or "").strip():
            await ack(response_action="errors", errors={"text": "Say what happened"})
            return
        await self._store_view(ack, "key_event", body, view)

    async def on_timeline_pick_submit(
        self, ack: Any, body: dict[str, Any], view: dict[str, Any]
    ) -> None:
        await self._store_view(ack, "pick", body, view)

    async def _store_view(
        self, ack: Any, kind: str, body: dict[str, Any], view: dict[str, Any]
    ) -> None:
        """A modal submission: keyed by the view and its hash, so a replay is stored once."""
        receipt = await self.store_input(
            kind=kind,
            key=f"view:{view['id']}:{view.get('hash', '')}",
            channel=str(read_metadata(view).get("channel") or ""),
            body=body,
        )
        del receipt  # a submission's acknowledgement closes the modal: nothing more to say
        await ack()

    async def on_button(self, ack: Any, body: dict[str, Any]) -> None:
        action = body["actions"][0]
        name = button_action(action["action_id"])
        value = action.get("value") or ""
        channel = (body.get("channel") or {}).get("id", "")
        if name == "key_event" and value.isdigit():
            await ack()
            await self.client.views_open(
                trigger_id=body["trigger_id"], view=key_event_modal(int(value), channel)
            )
            return
        if c.button_command(name, value) is None:
            await ack()
            return
        receipt = await self.store_input(
            kind="button",
            key=f"action:{body['trigger_id']}",
            channel=channel,
            body=body,
            reply_to=body.get("response_url"),
        )
        await ack()
        if receipt.new and receipt.behind:
            await self.tell(body["user"]["id"], channel, queued_note(receipt.ahead))

    async def on_oncall(self, ack: Any, command: dict[str, Any]) -> None:
        """`/oncall ...`: malformed text gets its usage at once; the rest (reads and overrides)
        is stored, then applied and answered like `/incident`."""
        text = (command.get("text") or "").strip()
        try:
            parse_oncall(text)
        except c.UsageError as exc:
            await ack(text=str(exc), response_type="ephemeral")
            return
        receipt = await self.store_input(
            kind="oncall",
            key=f"oncall:{command['trigger_id']}",
            channel=command["channel_id"],
            body=command,
            reply_to=command.get("response_url"),
        )
        await self.stored_ack(ack, receipt)

    async def on_timeline_shortcut(self, ack: Any, body: dict[str, Any]) -> None:
        """Message shortcut "Add to timeline": in an incident channel it is stored and applied;
        elsewhere the person picks the incident first (a modal, opened at once)."""
        channel = body["channel"]["id"]
        async with self.store.unit() as u:
            here = await u.incident_for_channel(PLATFORM, channel)
            open_incidents = [] if here else await u.incidents(include_closed=False)
        if here is not None:
            receipt = await self.store_input(
                kind="shortcut", key=f"shortcut:{body['trigger_id']}", channel=channel, body=body
            )
            await self.stored_ack(ack, receipt)
            return
        await ack()
        user, message = body["user"]["id"], body["message"]
        if not open_incidents:
            await self.tell(user, channel, "There is no open incident to add this message to.")
            return
        await self.client.views_open(
            trigger_id=body["trigger_id"],
            view=pick_incident_modal(
                [(i.number, i.title) for i in open_incidents[:100]],
                channel_id=channel,
                ts=message["ts"],
                author_id=message.get("user", ""),
            ),
        )

    async def on_message(self, ack: Any, body: dict[str, Any], event: dict[str, Any]) -> None:
        """Thread replies (and their edits and deletions) that may be timeline entries."""
        subtype = event.get("subtype")
        if subtype == "message_changed":
            message = event.get("message", {})
            wanted = not (message.get("bot_id") or message.get("user") == self.bot_user_id)
        elif subtype == "message_deleted":
            wanted = True
        else:
            thread_ts = event.get("thread_ts")
            wanted = (
                subtype in THREAD_SUBTYPES
                and not event.get("bot_id")
                and bool(event.get("user"))
                and event.get("user") != self.bot_user_id
                and bool(thread_ts)
                and thread_ts != event.get("ts")
            )  # joins, topic changes, bots (ourselves), channel messages: not entries
        if wanted:
            await self._store_event(body, event.get("channel", ""))
        await ack()

    async def on_reaction(self, ack: Any, body: dict[str, Any], event: dict[str, Any]) -> None:
        item = event.get("item", {})
        removed = event["type"] == "reaction_removed"
        key_emoji = event.get("reaction") == self.catalog.key_event_emoji
        wanted = item.get("type") == "message" and (removed or key_emoji)
        if wanted:
            await self._store_event(body, item.get("channel", ""))
        await ack()

    async def on_member_joined(self, ack: Any, body: dict[str, Any], event: dict[str, Any]) -> None:
        """Offer a catch-up to someone joining an incident channel (catalog: catchup_on_join)."""
        user = event.get("user", "")
        if self.catalog.catchup_on_join and user and user != self.bot_user_id:
            await self._store_event(body, event.get("channel", ""))
        await ack()

    async def _store_event(self, body: dict[str, Any], channel: str) -> None:
        """An Events API event, keyed by its event_id: Slack's retries are stored once."""
        event_id = body.get("event_id") or f"{body['event'].get('event_ts', '')}"
        await self.store_input(kind="event", key=f"event:{event_id}", channel=channel, body=body)

    # --- Quick Start (modals: answered at once, never stored) -----------------------------

    async def open_declare(
        self,
        trigger_id: str,
        user: str,
        channel: str,
        description: str,
        type_hint: str | None,
    ) -> None:
        """Open the modal at once; fill it when the suggestion arrives."""
        suggestion_task = None
        if description:
            suggestion_task = asyncio.ensure_future(
                self.service.suggest(description=description, type_hint=type_hint)
            )
            await asyncio.wait([suggestion_task], timeout=SUGGEST_WAIT)
        ready = suggestion_task is not None and suggestion_task.done()
        suggestion = _result(suggestion_task) if ready else None
        # While the model is still thinking the fields stay empty: Slack keeps an input's first
        # initial value through views.update, so prefilled guesses could never be replaced.
        note = ""
        if ready and suggestion is None and suggestion_task is not None:
            note = f"⚠️ {suggestion_task.exception()}"
        view = declare_modal(
            self.catalog,
            description=description,
            suggestion=suggestion,
            declarer=user,
            channel_id=channel,
            loading=suggestion_task is not None and not ready,
            note=note,
        )
        opened = await self.client.views_open(trigger_id=trigger_id, view=view)
        if suggestion_task is None or ready:
            return

        async def fill_in() -> None:
            try:
                result: Suggestion | None = await suggestion_task
                problem = ""
            except ServiceError as exc:
                result, problem = None, f"⚠️ {exc}"
            try:
                await self.client.views_update(
                    view_id=opened["view"]["id"],
                    hash=opened["view"].get("hash"),  # not over a type the person picked
                    view=declare_modal(
                        self.catalog,
                        description=description,
                        suggestion=result,
                        declarer=user,
                        channel_id=channel,
                        loading=False,
                        note=problem,
                    ),
                )
            except SlackApiError as exc:  # submitted, closed or changed meanwhile: keep theirs
                error = exc.response.get("error") if exc.response is not None else exc
                logger.info("slack: suggestion not shown in the modal: %s", error)
            except Exception:
                logger.exception("slack: filling in the Quick Start modal failed")

        task = asyncio.create_task(fill_in())
        self._fills.add(task)
        task.add_done_callback(self._fills.discard)

    async def filled_in(self) -> None:
        """Wait for the modals being filled in (tests)."""
        if self._fills:
            await asyncio.gather(*self._fills, return_exceptions=True)

    async def on_declare_shortcut(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        await self.open_declare(body["trigger_id"], body["user"]["id"], "", "", None)

    async def on_type_changed(self, ack: Any, body: dict[str, Any]) -> None:
        """The person picked another incident type: show that type's custom fields."""
        await ack()
        view = body["view"]
        state = view["state"]
        chosen = state_value(state, "type") or self.catalog.incident_types[0].name
        itype = self.catalog.incident_type(chosen)
        kept = (
            {f.name: state_value(state, FIELD_BLOCK + f.name) for f in itype.fields}
            if itype
            else {}
        )
        metadata = read_metadata(view)
        carried = metadata.get("suggested") or {}
        # Where each value now shown came from: what the person changed is theirs.
        sources = _sources_now(view, carried_sources(metadata), list(TOP_FIELDS) + list(kept))
        sources["type"] = "person"
        current = Suggestion(
            title=state_value(state, "title") or "",
            summary="",
            type=chosen,
            severity=state_value(state, "severity") or "",
            priority=state_value(state, "priority") or "",
            custom_fields={k: v for k, v in kept.items() if v not in (None, [], "")},
            sources=sources,
            note=str(carried.get("note") or ""),
            model=str(carried.get("model") or ""),
            endpoint=str(carried.get("endpoint") or ""),
        )
        await self.client.views_update(
            view_id=view["id"],
            hash=view.get("hash"),
            view=declare_modal(
                self.catalog,
                description=state_value(state, "description") or "",
                suggestion=current,
                declarer=state_value(state, "commander") or body["user"]["id"],
                channel_id=metadata.get("channel", ""),
                loading=False,
                note="Fields for the chosen type.",
                keep_suggestion="suggested" in metadata,
            ),
        )

    # --- apply: what the inbox worker does with a stored input ----------------------------

    async def prepare(self, item: InboxItem) -> Step | None:
        """The `Applier` half of this edge (see adapters/inbox.py)."""
        try:
            return await self._prepare(item)
        except SlackApiError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status >= 500 or status == 429:
                raise Transient(f"slack: {_api_error(exc)}") from None
            raise

    async def _prepare(self, item: InboxItem) -> Step | None:
        body, reply_to = item.payload, item.reply_to
        if item.kind == "command":
            return await self._apply_command(body, reply_to)
        if item.kind == "button":
            return await self._apply_button(body, reply_to)
        if item.kind == "oncall":
            return await self._apply_oncall(body, reply_to)
        if item.kind == "declare":
            return await self._apply_declare(body)
        if item.kind == "key_event":
            return await self._apply_key_event(body)
        if item.kind == "pick":
            return await self._apply_pick(body)
        if item.kind == "shortcut":
            return await self._apply_shortcut(body)
        if item.kind == "event":
            return await self._apply_event(body)
        logger.warning("slack: inbox row %s of unknown kind %r skipped", item.id, item.kind)
        return None

    def _answer(self, reply_to: str | None, reply: Reply, user: str, channel: str) -> Answer:
        async def send() -> None:
            await self.respond(reply_to, reply, user, channel)

        return send

    def _told(self, user: str, channel: str, text: str) -> Answer:
        async def send() -> None:
            await self.tell(user, channel, text)

        return send

    async def _apply_command(self, body: dict[str, Any], reply_to: str | None) -> Step:
        user, channel = body["user_id"], body["channel_id"]
        try:
            command = c.parse((body.get("text") or "").strip())  # it parsed when stored
        except c.UsageError as exc:  # a grammar changed by an upgrade in between
            answer = self._answer(reply_to, Reply(str(exc), ok=False), user, channel)
            return Step(lambda: _answer_only(answer))
        actor = await self.actor(user, body.get("user_name"))
        where = self.where(channel, team=body.get("team_id", ""))

        async def apply() -> Answer:
            reply = await self.service.handle(command, actor=actor, where=where)
            return self._answer(reply_to, reply, user, channel)

        # A catch-up waits on the model and changes nothing: not inside the transaction.
        return Step(apply, alone=isinstance(command, c.CatchUp))

    async def _apply_oncall(self, body: dict[str, Any], reply_to: str | None) -> Step:
        user, channel = body["user_id"], body["channel_id"]
        actor = await self.actor(user, body.get("user_name"))
        where = self.where(channel, team=body.get("team_id", ""))

        async def apply() -> Answer:
            reply = await self.service.handle_oncall_text(
                (body.get("text") or "").strip(), actor=actor, where=where
            )
            return self._answer(reply_to, reply, user, channel)

        return Step(apply)

    async def _apply_button(self, body: dict[str, Any], reply_to: str | None) -> Step | None:
        action = body["actions"][0]
        command = c.button_command(button_action(action["action_id"]), action.get("value") or "")
        if command is None:
            return None
        user, channel = body["user"]["id"], (body.get("channel") or {}).get("id", "")
        actor = await self.actor(user, body["user"].get("name"))

        async def apply() -> Answer:
            reply = await self.service.handle(command, actor=actor, where=self.where(channel))
            return self._answer(reply_to, reply, user, channel)

        return Step(apply)

    async def _apply_declare(self, body: dict[str, Any]) -> Step:
        view = body["view"]
        state = view["state"]
        user = body["user"]["id"]
        type_name = state_value(state, "type") or ""
        itype = self.catalog.incident_type(type_name)
        fields: dict[str, Any] = {}
        for f in itype.fields if itype else []:
            raw = state_value(state, FIELD_BLOCK + f.name)
            if raw in (None, "", []):
                continue
            fields[f.name] = f"<@{raw}>" if f.kind.value == "user" else raw
        title = (state_value(state, "title") or "").strip()
        metadata = read_metadata(view)
        channel = str(metadata.get("channel") or "")
        commander = state_value(state, "commander")
        actor = await self.actor(user, body["user"].get("name"))
        severity = state_value(state, "severity") or ""
        priority = state_value(state, "priority") or ""
        suggested = _as_submitted(
            view,
            metadata,
            Suggestion(
                title=title,
                summary="",
                type=type_name,
                severity=severity,
                priority=priority,
                custom_fields=fields,
            ),
        )

        async def apply() -> Answer:
            try:
                reply = await self.service.declare(
                    actor=actor,
                    where=self.where(channel, team=body.get("team", {}).get("id", "")),
                    description=state_value(state, "description") or title,
                    title=title,
                    type=type_name,
                    severity=severity,
                    priority=priority,
                    custom_fields=fields,
                    commander=f"<@{commander}>" if commander else None,
                    suggested=suggested,
                )
            except ServiceError as exc:
                reply = Reply(f"The incident was not declared: {exc}", ok=False)
            return self._told(user, channel, reply.text)

        return Step(apply)

    async def _apply_key_event(self, body: dict[str, Any]) -> Step:
        view = body["view"]
        text = (state_value(view["state"], "text") or "").strip()
        metadata = read_metadata(view)
        user, channel = body["user"]["id"], str(metadata.get("channel") or "")
        actor = await self.actor(user, body["user"].get("name"))

        async def apply() -> Answer:
            reply = await self.service.handle(
                c.AddKeyEvent(incident=metadata.get("incident"), text=text),
                actor=actor,
                where=self.where(channel),
            )
            return self._told(user, channel, reply.text)

        return Step(apply)

    async def _apply_pick(self, body: dict[str, Any]) -> Step | None:
        view = body["view"]
        picked = state_value(view["state"], "incident")
        carried = read_metadata(view)
        channel, ts = carried.get("channel", ""), carried.get("ts", "")
        user = body["user"]["id"]
        if not (channel and ts and picked):
            return None
        message = await self.fetch_message(channel, ts)
        if message is None:
            text = "I cannot read that message any more; nothing added."
            return Step(lambda: _answer_only(self._told(user, channel, text)))
        actor = await self.actor(user, body["user"].get("name"))
        author_id = message.get("user") or carried.get("author")
        author = await self.actor(author_id) if author_id else None

        async def apply() -> Answer:
            try:
                reply = await self.service.key_event_from_message(
                    where=self.where(channel),
                    actor=actor,
                    message_id=ts,
                    text=_message_text(message),
                    author=author.name if author else "",
                    occurred_at=ts_time(ts),
                    incident_number=int(picked),
                )
            except ServiceError as exc:
                reply = Reply(str(exc), ok=False)
            return self._told(
                user, channel, reply.text if reply else "That message is already a key event."
            )

        return Step(apply)

    async def _apply_shortcut(self, body: dict[str, Any]) -> Step:
        message, channel = body["message"], body["channel"]["id"]
        user = body["user"]["id"]
        actor = await self.actor(user, body["user"].get("name"))
        author = await self.actor(message.get("user", "")) if message.get("user") else None

        async def apply() -> Answer:
            reply = await self.service.key_event_from_message(
                where=self.where(channel),
                actor=actor,
                message_id=message["ts"],
                text=_message_text(message),
                author=author.name if author else "",
                occurred_at=ts_time(message["ts"]),
            )
            text = reply.text if reply else "That message is already a key event."
            return self._told(user, channel, text)

        return Step(apply)

    async def _apply_event(self, body: dict[str, Any]) -> Step | None:
        event = body["event"]
        kind = event.get("type")
        if kind == "member_joined_channel":
            return await self._apply_joined(event)
        if kind in ("reaction_added", "reaction_removed"):
            return await self._apply_reaction(event)
        if kind != "message":
            return None
        subtype = event.get("subtype")
        if subtype == "message_changed":
            message = event.get("message", {})
            where = self.where(event["channel"])
            return Step(
                lambda: _recorded(
                    self.service.edit_thread_message(
                        where=where, message_id=message["ts"], text=_message_text(message)
                    )
                )
            )
        if subtype == "message_deleted":
            where = self.where(event["channel"])
            return Step(
                lambda: _recorded(
                    self.service.delete_thread_message(where=where, message_id=event["deleted_ts"])
                )
            )
        actor = await self.actor(event["user"])
        where = self.where(event["channel"], event.get("thread_ts"), team=event.get("team", ""))
        return Step(
            lambda: _recorded(
                self.service.record_thread_message(
                    where=where,
                    actor=actor,
                    text=_message_text(event),
                    message_id=event["ts"],
                    occurred_at=ts_time(event["ts"]),
                )
            )
        )

    async def _apply_reaction(self, event: dict[str, Any]) -> Step | None:
        item = event.get("item", {})
        channel, ts = item["channel"], item["ts"]
        actor = await self.actor(event["user"])
        if event["type"] == "reaction_removed":
            return Step(
                lambda: _recorded(
                    self.service.reaction_removed(
                        where=self.where(channel),
                        actor=actor,
                        emoji=event.get("reaction", ""),
                        message_id=ts,
                    )
                )
            )
        message = await self.fetch_message(channel, ts)
        if message is None:
            logger.warning("slack: reacted message %s in %s not found", ts, channel)
            return None
        author = await self.actor(message["user"]) if message.get("user") else None

        async def mark() -> Answer | None:
            reply = await self.service.reaction_added(
                where=self.where(channel),
                actor=actor,
                emoji=event["reaction"],
                message_id=ts,
                text=_message_text(message),
                author=author.name if author else "",
                occurred_at=ts_time(ts),
            )
            if reply is not None and not reply.ok:  # a 📌 on the pinned summary or the timeline
                return self._told(event["user"], channel, reply.text)
            return None

        return Step(mark)

    async def _apply_joined(self, event: dict[str, Any]) -> Step:
        user, channel = event.get("user", ""), event.get("channel", "")
        actor = await self.actor(user)

        async def offer() -> Answer | None:
            reply = await self.service.handle(c.CatchUp(), actor=actor, where=self.where(channel))
            return self._told(user, channel, reply.text) if reply.ok else None  # not an incident

        return Step(offer, alone=True)

    async def fetch_message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """The message at `ts`: from the channel's history, or from its thread."""
        history = await self.client.conversations_history(
            channel=channel, oldest=ts, latest=ts, inclusive=True, limit=1
        )
        found: list[dict[str, Any]] = history.get("messages", [])
        for message in found:
            if message.get("ts") == ts:
                return dict(message)
        # A thread reply is not in the history. conversations.replies with a reply's ts answers
        # its whole thread, the parent first whatever the window: pick the one asked for.
        try:
            replies = await self.client.conversations_replies(
                channel=channel, ts=ts, oldest=ts, latest=ts, inclusive=True
            )
        except SlackApiError as exc:
            if exc.response is not None and exc.response.get("error") == "thread_not_found":
                return None
            raise
        thread: list[dict[str, Any]] = replies.get("messages", [])
        return next((dict(m) for m in thread if m.get("ts") == ts), None)


class NotStored(Exception):
    """An input could not be stored (the database is away): it is not acknowledged."""


def _api_error(exc: SlackApiError) -> str:
    return str(exc.response.get("error", "")) if exc.response is not None else str(exc)


def _message_text(message: dict[str, Any]) -> str:
    """A message's text, naming the files shared with it (a file can come without text)."""
    files = [f.get("name") or f.get("title") or "a file" for f in message.get("files") or []]
    shown = ", ".join(f"📎 {name}" for name in files)
    return "\n".join(p for p in (message.get("text") or "", shown) if p)


def _sources_now(
    view: dict[str, Any], sources: dict[str, str], names: list[str]
) -> dict[str, FieldSource]:
    """`sources` as they stand in a submitted view: a value the person changed is theirs."""
    state = view.get("state") or {}
    now: dict[str, FieldSource] = {}
    for name in names:
        block = field_block(name)
        given, opened = state_value(state, block), initial_value(view, block)
        if not same_value(given, opened):
            if given not in (None, "", []):
                now[name] = "person"
        elif name in sources:
            now[name] = cast(FieldSource, sources[name])
        elif given not in (None, "", []):
            now[name] = "default"
    return now


def _as_submitted(
    view: dict[str, Any], metadata: dict[str, Any], submitted: Suggestion
) -> Suggestion | None:
    """What was suggested for this modal as the person submitted it, for the declare entry:
    their values, the suggester's sources for those they kept, "person" for the rest.
    None when nothing was suggested (an empty Quick Start, or a suggestion still loading)."""
    carried = metadata.get("suggested")
    if not isinstance(carried, dict):
        return None
    names = [*TOP_FIELDS, *submitted.custom_fields]
    return replace(
        submitted,
        sources=_sources_now(view, carried_sources(metadata), names),
        note=str(carried.get("note") or ""),
        model=str(carried.get("model") or ""),
        endpoint=str(carried.get("endpoint") or ""),
    )


async def _recorded(work: Awaitable[object]) -> None:
    """Apply an event's change; an event tells nobody anything."""
    await work


async def _answer_only(answer: Answer) -> Answer:
    return answer


def _result(task: asyncio.Future[Suggestion] | None) -> Suggestion | None:
    if task is None or task.exception() is not None:
        return None
    return task.result()
