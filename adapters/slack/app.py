"""The Slack edge: Bolt listeners that translate Slack input into service calls.

Every listener acks first (Slack wants an answer within 3 seconds) and does the rest after.
Handlers stay short: translate, call the service, show the reply.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.ordering import InOrder
from adapters.slack.blocks import (
    ACTION_PREFIX,
    DECLARE_CALLBACK,
    FIELD_BLOCK,
    KEY_EVENT_CALLBACK,
    TIMELINE_PICK_CALLBACK,
    TOP_FIELDS,
    TYPE_ACTION,
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
from bot.ports import Actor, ChannelRef, FieldSource, Store, Suggestion
from bot.service import IncidentService, Reply, ServiceError, coerce_field

logger = logging.getLogger(__name__)

PLATFORM = "slack"
DECLARE_SHORTCUT = "opsroom_declare_incident"
TIMELINE_SHORTCUT = "opsroom_add_to_timeline"
SUGGEST_WAIT = 0.25  # seconds to wait for a suggestion before opening the modal without one
# Thread replies that are timeline entries: plain ones, "also send to channel", and files.
THREAD_SUBTYPES = (None, "thread_broadcast", "file_share")


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
    ) -> None:
        self.service = service
        self.store = store
        self.catalog = catalog
        self.client = client
        self.chat = SlackChat(client)
        self.names: dict[str, str] = {}
        self.order = InOrder()
        self.bot_user_id: str | None = None
        self.team_id = ""
        self._tasks: set[asyncio.Task[None]] = set()
        self.app = AsyncApp(
            client=client, signing_secret=signing_secret, raise_error_for_unhandled_request=False
        )
        self._register()

    async def check_auth(self) -> None:
        """`auth.test`; raises when the token is wrong or Slack cannot be reached."""
        result = await self.client.auth_test()
        self.bot_user_id = result.get("user_id")
        self.team_id = result.get("team_id") or ""
        if self.bot_user_id:  # the bot is no person to assign things to
            self.service.refuse_mentions(f"<@{self.bot_user_id}>")

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

    def spawn(self, work: Awaitable[None]) -> None:
        """Run slow work after the ack, keeping a reference so it is not collected."""

        async def guarded() -> None:
            try:
                await work
            except Exception:
                logger.exception("slack: background work failed")

        task = asyncio.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain_tasks(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def tell(self, user_id: str, channel_id: str, text: str) -> None:
        """An ephemeral message to one person in a channel (where there is one)."""
        if not channel_id:
            return
        try:
            await self.client.chat_postEphemeral(channel=channel_id, user=user_id, text=text)
        except SlackApiError as exc:
            logger.warning(
                "slack: could not tell %s in %s: %s",
                user_id,
                channel_id,
                exc.response.get("error") if exc.response is not None else exc,
            )

    async def once(self, body: dict[str, Any], work: Callable[[], Awaitable[object]]) -> None:
        """Apply an event once: Slack retries (x-slack-retry-num) and duplicates do nothing.

        The event id is claimed after the work succeeded, so an event whose handling failed is
        applied when Slack retries it; the work itself is idempotent for the overlap.
        """
        event_id = body.get("event_id")
        if event_id and await self._seen(event_id):
            logger.info("slack: event %s already applied", event_id)
            return
        await work()
        if event_id:
            async with self.store.unit() as u:
                await u.claim_event(PLATFORM, event_id)

    async def _seen(self, event_id: str) -> bool:
        async with self.store.unit() as u:
            return await u.event_seen(PLATFORM, event_id)

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
        for name in ("ack", "resolve", "reopen", "action_done", "key_event", "runbook_check",
                     "runbook_approve"):
            app.action(ACTION_PREFIX + name)(self.on_button)
        app.event("message")(self.on_message)
        app.event("reaction_added")(self.on_reaction_added)
        app.event("reaction_removed")(self.on_reaction_removed)
        app.event("member_joined_channel")(self.on_member_joined)
        app.error(self.on_error)

    async def on_error(self, error: Exception, body: dict[str, Any]) -> None:
        logger.error(
            "slack: %s while handling %s",
            type(error).__name__,
            body.get("type") or body.get("command"),
            exc_info=error,
        )

    async def on_member_joined(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        """Offer a catch-up to someone joining an incident channel (catalog: catchup_on_join)."""
        user, channel = event.get("user", ""), event.get("channel", "")
        if not self.catalog.catchup_on_join or not user or user == self.bot_user_id:
            return
        actor = await self.actor(user)

        async def offer() -> None:
            reply = await self.service.handle(c.CatchUp(), actor=actor, where=self.where(channel))
            if reply.ok:  # not an incident channel: nothing to offer
                await self.tell(user, channel, reply.text)

        await self.once(body, offer)

    # --- /incident ----------------------------------------------------------------------

    async def on_command(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
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
            await self.open_declare(
                command["trigger_id"], user, channel, description, type_hint, respond
            )
            return
        turn = self.order.claim(channel)  # before the ack: the order the commands arrived in
        try:
            await ack()
            actor = await self.actor(user, command.get("user_name"))
            async with turn:
                reply = await self.service.handle(
                    parsed, actor=actor, where=self.where(channel, team=command.get("team_id", ""))
                )
        finally:
            turn.release()
        await self.respond(respond, reply)

    async def on_oncall(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        """`/oncall ...`: reads and overrides, no incident; answered ephemeral after the ack."""
        await ack()
        actor = await self.actor(command["user_id"], command.get("user_name"))
        where = self.where(command["channel_id"], team=command.get("team_id", ""))
        reply = await self.service.handle_oncall_text(
            (command.get("text") or "").strip(), actor=actor, where=where
        )
        await self.respond(respond, reply)

    async def respond(self, respond: Any, reply: Reply) -> None:
        blocks = message_blocks(reply.message) if reply.message else None
        await respond(
            text=reply.text, blocks=blocks, response_type="ephemeral", replace_original=False
        )

    # --- Quick Start --------------------------------------------------------------------

    async def open_declare(
        self,
        trigger_id: str,
        user: str,
        channel: str,
        description: str,
        type_hint: str | None,
        respond: Any = None,
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

        self.spawn(fill_in())

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

    async def on_declare_submit(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        state = view["state"]
        user = body["user"]["id"]
        type_name = state_value(state, "type") or ""
        itype = self.catalog.incident_type(type_name)
        errors: dict[str, str] = {}
        fields: dict[str, Any] = {}
        for f in itype.fields if itype else []:
            raw = state_value(state, FIELD_BLOCK + f.name)
            if raw in (None, "", []):
                if f.required:
                    errors[FIELD_BLOCK + f.name] = f"{f.display} is required"
                continue
            if f.kind.value == "user":
                raw = f"<@{raw}>"
            try:
                fields[f.name] = coerce_field(f, raw, not_people=self.service.not_people)
            except ServiceError as exc:
                errors[FIELD_BLOCK + f.name] = str(exc)
        title = (state_value(state, "title") or "").strip()
        if not title:
            errors["title"] = "Give the incident a short title"
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        metadata = read_metadata(view)
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
        try:
            reply = await self.service.declare(
                actor=actor,
                where=self.where(
                    metadata.get("channel") or "", team=body.get("team", {}).get("id", "")
                ),
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
            await ack(response_action="errors", errors={"title": str(exc)})
            return
        await ack()
        self.spawn(self.tell(user, metadata.get("channel") or "", reply.text))

    # --- buttons and modals ---------------------------------------------------------------

    async def on_button(self, ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        action = body["actions"][0]
        name = action["action_id"].removeprefix(ACTION_PREFIX)
        value = action.get("value") or ""
        channel = (body.get("channel") or {}).get("id", "")
        if name == "key_event" and value.isdigit():
            await self.client.views_open(
                trigger_id=body["trigger_id"], view=key_event_modal(int(value), channel)
            )
            return
        command = c.button_command(name, value)
        if command is None:
            return
        actor = await self.actor(body["user"]["id"], body["user"].get("name"))
        reply = await self.service.handle(command, actor=actor, where=self.where(channel))
        await self.respond(respond, reply)

    async def on_key_event_submit(
        self, ack: Any, body: dict[str, Any], view: dict[str, Any]
    ) -> None:
        text = (state_value(view["state"], "text") or "").strip()
        if not text:
            await ack(response_action="errors", errors={"text": "Say what happened"})
            return
        await ack()
        metadata = json.loads(view.get("private_metadata") or "{}")
        user = body["user"]["id"]
        actor = await self.actor(user, body["user"].get("name"))
        reply = await self.service.handle(
            c.AddKeyEvent(incident=metadata.get("incident"), text=text),
            actor=actor,
            where=self.where(metadata.get("channel") or ""),
        )
        await self.tell(user, metadata.get("channel") or "", reply.text)

    async def on_timeline_shortcut(self, ack: Any, body: dict[str, Any]) -> None:
        """Message shortcut "Add to timeline": in an incident channel at once, else ask which."""
        await ack()
        message, channel = body["message"], body["channel"]["id"]
        user = body["user"]["id"]
        actor = await self.actor(user, body["user"].get("name"))
        author = await self.actor(message.get("user", "")) if message.get("user") else None
        reply = await self.service.key_event_from_message(
            where=self.where(channel),
            actor=actor,
            message_id=message["ts"],
            text=_message_text(message),
            author=author.name if author else "",
            occurred_at=ts_time(message["ts"]),
        )
        if reply is not None:
            await self.tell(user, channel, reply.text)
            return
        async with self.store.unit() as u:
            open_incidents = await u.incidents(include_closed=False)
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

    async def on_timeline_pick_submit(
        self, ack: Any, body: dict[str, Any], view: dict[str, Any]
    ) -> None:
        await ack()
        picked = state_value(view["state"], "incident")
        carried = read_metadata(view)
        channel, ts = carried.get("channel", ""), carried.get("ts", "")
        user = body["user"]["id"]
        if not (channel and ts and picked):
            return
        try:
            message = await self.fetch_message(channel, ts)
        except SlackApiError as exc:
            logger.warning("slack: could not read message %s in %s: %s", ts, channel, exc)
            message = None
        if message is None:
            await self.tell(user, channel, "I cannot read that message any more; nothing added.")
            return
        actor = await self.actor(user, body["user"].get("name"))
        author_id = message.get("user") or carried.get("author")
        author = await self.actor(author_id) if author_id else None
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
        await self.tell(
            user, channel, reply.text if reply else "That message is already a key event."
        )

    # --- events -------------------------------------------------------------------------

    async def on_message(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        subtype = event.get("subtype")
        if subtype == "message_changed":
            message = event.get("message", {})
            if message.get("bot_id") or message.get("user") == self.bot_user_id:
                return
            where = self.where(event["channel"])
            await self.once(
                body,
                lambda: self.service.edit_thread_message(
                    where=where, message_id=message["ts"], text=_message_text(message)
                ),
            )
            return
        if subtype == "message_deleted":
            where = self.where(event["channel"])
            await self.once(
                body,
                lambda: self.service.delete_thread_message(
                    where=where, message_id=event["deleted_ts"]
                ),
            )
            return
        if (
            subtype not in THREAD_SUBTYPES
            or event.get("bot_id")
            or not event.get("user")
            or event.get("user") == self.bot_user_id
        ):
            return  # joins, topic changes, bots (ourselves included): not timeline entries
        thread_ts = event.get("thread_ts")
        if not thread_ts or thread_ts == event.get("ts"):
            return  # only replies in a thread can be timeline entries
        actor = await self.actor(event["user"])
        where = self.where(event["channel"], thread_ts, team=event.get("team", ""))
        await self.once(
            body,
            lambda: self.service.record_thread_message(
                where=where,
                actor=actor,
                text=_message_text(event),
                message_id=event["ts"],
                occurred_at=ts_time(event["ts"]),
            ),
        )

    async def on_reaction_added(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        if event.get("reaction") != self.catalog.key_event_emoji:
            return
        item = event.get("item", {})
        if item.get("type") != "message":
            return
        channel, ts = item["channel"], item["ts"]
        message = await self.fetch_message(channel, ts)
        if message is None:
            logger.warning("slack: reacted message %s in %s not found", ts, channel)
            return
        actor = await self.actor(event["user"])
        author = await self.actor(message["user"]) if message.get("user") else None
        replies: list[Reply | None] = []

        async def mark() -> None:
            replies.append(
                await self.service.reaction_added(
                    where=self.where(channel),
                    actor=actor,
                    emoji=event["reaction"],
                    message_id=ts,
                    text=_message_text(message),
                    author=author.name if author else "",
                    occurred_at=ts_time(ts),
                )
            )

        await self.once(body, mark)
        refused = next((r for r in replies if r is not None and not r.ok), None)
        if refused is not None:  # a 📌 on the pinned summary or the timeline's first message
            await self.tell(event["user"], channel, refused.text)

    async def on_reaction_removed(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        item = event.get("item", {})
        if item.get("type") != "message":
            return
        actor = await self.actor(event["user"])
        await self.once(
            body,
            lambda: self.service.reaction_removed(
                where=self.where(item["channel"]),
                actor=actor,
                emoji=event.get("reaction", ""),
                message_id=item["ts"],
            ),
        )

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


def _result(task: asyncio.Future[Suggestion] | None) -> Suggestion | None:
    if task is None or task.exception() is not None:
        return None
    return task.result()
