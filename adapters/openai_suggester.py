"""AI field suggestions and catch-up summaries through any OpenAI-compatible endpoint.

`OpenAISuggester` implements the `Suggester` port on the `openai` SDK's `AsyncOpenAI`: it asks
for Structured Outputs whose schema is built from the catalog (`bot.ai`), falls back to JSON
mode on servers without them, and answers within a time budget whatever happens, using the
built-in heuristic and saying why when the model cannot help. `OpenAISummarizer` writes
catch-up summaries whose citations are checked against the real timeline.

Nothing sent to the model is unredacted, and the API key never reaches a log line or a note.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import urlsplit

import openai
from openai import AsyncOpenAI

from bot.ai import (
    CATCHUP_SYSTEM,
    ModelOutputError,
    catchup_prompt,
    clean_citations,
    parse_model_json,
    plain_catchup,
    response_format,
    system_prompt,
    user_prompt,
    validate_model_output,
)
from bot.catalog import Catalog
from bot.models import Incident, TimelineEntry
from bot.ports import Suggester, Suggestion, Written
from bot.redact import Redactor
from bot.suggest import HeuristicSuggester, ai_off_types_mentioned

logger = logging.getLogger(__name__)

DEFAULT_BUDGET_S = 8.0
# The SDK refuses to build a client without a key; self-hosted servers (vLLM, Ollama, LM Studio)
# usually need none, so a placeholder is given and the Authorization header is left out.
NO_KEY = "no-key-configured"


class _Refused(Exception):
    """The model declined to answer (Structured Outputs `refusal`)."""


def endpoint_host(base_url: object) -> str:
    """The host (and port) of an endpoint URL, never its credentials or path."""
    parts = urlsplit(str(base_url))
    host = parts.hostname or "unknown"
    return f"{host}:{parts.port}" if parts.port else host


def make_client(
    *, api_key: str | None, base_url: str | None, budget_s: float = DEFAULT_BUDGET_S
) -> AsyncOpenAI:
    """An `AsyncOpenAI` for the suggester: one retry at most, since the budget matters more."""
    return AsyncOpenAI(
        api_key=api_key or NO_KEY, base_url=base_url or None, max_retries=1, timeout=budget_s
    )


def _refuses_json_schema(exc: openai.APIStatusError) -> bool:
    """Whether a 400/422 says the server cannot do `response_format: json_schema`."""
    if exc.status_code not in (400, 422):
        return False
    text = f"{exc.message} {getattr(exc, 'param', '') or ''}".lower()
    return "response_format" in text or "json_schema" in text


def _reason(exc: BaseException, budget_s: float, endpoint: str) -> str:
    """Why the model could not help, in words for the person declaring."""
    if isinstance(exc, TimeoutError | openai.APITimeoutError):
        return f"timed out after {budget_s:g}s"
    if isinstance(exc, openai.APIConnectionError):
        return f"could not reach {endpoint}"
    if isinstance(exc, openai.APIStatusError):
        code = f" ({exc.code})" if isinstance(getattr(exc, "code", None), str) else ""
        return f"failed: {endpoint} answered HTTP {exc.status_code}{code}"
    if isinstance(exc, _Refused):
        return "was declined by the model"
    if isinstance(exc, ModelOutputError):
        return f"failed: {exc}"
    return f"failed ({type(exc).__name__})"


class _Chat:
    """What the suggester and the summariser share: the client, model, budget and headers."""

    def __init__(
        self,
        client: AsyncOpenAI,
        model: str,
        *,
        budget_s: float,
        redactor: Redactor | None,
        send_auth: bool,
    ) -> None:
        if budget_s <= 0:
            raise ValueError("budget_s must be positive")
        self.client = client
        self.model = model
        self.budget_s = budget_s
        self.redactor = redactor or Redactor()
        self.endpoint = endpoint_host(client.base_url)
        self._headers: Mapping[str, Any] = {} if send_auth else {"Authorization": openai.omit}

    @property
    def origin(self) -> str:
        return f"{self.model} at {self.endpoint}"

    async def _complete(
        self, messages: list[dict[str, str]], fmt: dict[str, Any] | None, deadline: float
    ) -> tuple[str, str]:
        """(content, finish_reason) of one chat completion; raises on refusal or no content."""
        remaining = max(0.05, deadline - time.monotonic())
        extra: dict[str, Any] = {"response_format": fmt} if fmt is not None else {}
        completion = await self.client.chat.completions.create(
            model=self.model,
            messages=messages,  # type: ignore[arg-type]
            timeout=remaining,
            extra_headers=self._headers or None,
            **extra,
        )
        if not completion.choices:
            raise ModelOutputError("the model sent no answer")
        choice = completion.choices[0]
        message = choice.message
        if getattr(message, "refusal", None):
            raise _Refused(message.refusal)
        if choice.finish_reason == "length":
            raise ModelOutputError("the model's answer was cut off before it ended")
        if not message.content:
            raise ModelOutputError("the model sent an empty answer")
        return message.content, choice.finish_reason


class OpenAISuggester(_Chat):
    """A `Suggester` asking an OpenAI-compatible model, within `budget_s` seconds.

    It never raises: on timeout, connection or HTTP error, unparseable output or a refusal it
    returns the fallback's (heuristic's) suggestion with `note` saying why. It does not ask the
    model at all when the hinted or heuristically chosen incident type has `ai: false`.
    """

    def __init__(
        self,
        client: AsyncOpenAI,
        model: str,
        *,
        budget_s: float = DEFAULT_BUDGET_S,
        redactor: Redactor | None = None,
        fallback: Suggester | None = None,
        send_auth: bool = True,
    ) -> None:
        super().__init__(client, model, budget_s=budget_s, redactor=redactor, send_auth=send_auth)
        self.fallback: Suggester = fallback or HeuristicSuggester()
        self.json_schema_supported = True  # set False once the server refuses json_schema

    async def suggest(
        self, *, description: str, type_hint: str | None, catalog: Catalog
    ) -> Suggestion:
        heuristic = await self.fallback.suggest(
            description=description, type_hint=type_hint, catalog=catalog
        )
        itype = catalog.incident_type(heuristic.type)
        if itype is not None and not itype.ai:
            return dataclasses.replace(
                heuristic,
                note=f"AI is off for {itype.name} incidents; using the built-in heuristic",
            )
        hinted = catalog.incident_type(type_hint) if type_hint else None
        sensitive = [] if hinted is not None else ai_off_types_mentioned(description, catalog)
        if sensitive:
            return dataclasses.replace(
                heuristic,
                note=f"this may be a {sensitive[0]} incident, for which AI is off; using the "
                "built-in heuristic",
            )
        started = time.monotonic()
        try:
            data, mode = await asyncio.wait_for(
                self._ask(description, type_hint, catalog, started + self.budget_s),
                timeout=self.budget_s,
            )
        except Exception as exc:  # whatever goes wrong, declaring goes on without the model
            reason = _reason(exc, self.budget_s, self.endpoint)
            logger.warning(
                "AI suggestion by %s %s (%.2fs); using the heuristic",
                self.origin,
                reason,
                time.monotonic() - started,
            )
            note = f"AI suggestion {reason}; using the built-in heuristic ({self.origin})"
            return _stamp(dataclasses.replace(heuristic, note=note), self.model, self.endpoint)
        try:
            suggestion = validate_model_output(data, catalog, heuristic)
            chosen = catalog.incident_type(suggestion.type)
            if chosen is not None and not chosen.ai:
                raise ModelOutputError(f"it chose {chosen.name}, a type with AI off")
        except ModelOutputError as exc:
            note = f"AI suggestion failed: {exc}; using the built-in heuristic ({self.origin})"
            return _stamp(dataclasses.replace(heuristic, note=note), self.model, self.endpoint)
        logger.info(
            "AI suggestion by %s in %.2fs (%s)", self.origin, time.monotonic() - started, mode
        )
        parts = [f"Suggested by {self.origin}" + (" in JSON mode" if mode != "json_schema" else "")]
        if suggestion.note:
            parts.append(suggestion.note)
        return _stamp(
            dataclasses.replace(suggestion, note="; ".join(parts)), self.model, self.endpoint
        )

    async def _ask(
        self, description: str, type_hint: str | None, catalog: Catalog, deadline: float
    ) -> tuple[dict[str, Any], str]:
        """The model's answer as a JSON object, and the response format that produced it."""
        user = {
            "role": "user",
            "content": user_prompt(self.redactor.redact(description), type_hint),
        }
        if self.json_schema_supported:
            messages = [{"role": "system", "content": system_prompt(catalog)}, user]
            try:
                content, _ = await self._complete(messages, response_format(catalog), deadline)
                return parse_model_json(content), "json_schema"
            except openai.APIStatusError as exc:
                if not _refuses_json_schema(exc):
                    raise
                logger.info(
                    "%s refuses json_schema response_format; using json_object", self.endpoint
                )
                self.json_schema_supported = False
        messages = [
            {"role": "system", "content": system_prompt(catalog, schema_in_prompt=True)},
            user,
        ]
        content, _ = await self._complete(messages, {"type": "json_object"}, deadline)
        return parse_model_json(content), "json_object"


def _stamp(suggestion: Suggestion, model: str, endpoint: str) -> Suggestion:
    """Record which model and endpoint were asked, on the fields `Suggestion` has for it."""
    names = {f.name for f in dataclasses.fields(Suggestion)}
    values: dict[str, Any] = {
        k: v for k, v in (("model", model), ("endpoint", endpoint)) if k in names
    }
    return dataclasses.replace(suggestion, **values) if values else suggestion


class OpenAISummarizer(_Chat):
    """Catch-up summaries of a timeline by an OpenAI-compatible model, within `budget_s`.

    `summarize(entries)` returns the text to post and how many citations of entries that do not
    exist were removed from it. It never raises: when the model cannot help, the text is the
    plain catch-up (where the incident stands, its latest entries, each cited) headed by why.
    """

    def __init__(
        self,
        client: AsyncOpenAI,
        model: str,
        *,
        budget_s: float = DEFAULT_BUDGET_S,
        redactor: Redactor | None = None,
        send_auth: bool = True,
    ) -> None:
        super().__init__(client, model, budget_s=budget_s, redactor=redactor, send_auth=send_auth)

    async def summarize(
        self,
        entries: Sequence[TimelineEntry],
        *,
        incident: Incident | None = None,
        now: datetime | None = None,
        tz: tzinfo = UTC,
    ) -> tuple[str, int]:
        live = [e for e in entries if not e.deleted and e.id is not None]
        if not live:
            return "Nothing on the timeline yet.", 0
        valid = {e.id for e in live if e.id is not None}
        messages = [
            {"role": "system", "content": CATCHUP_SYSTEM},
            {"role": "user", "content": catchup_prompt(live, self.redactor.redact, tz)},
        ]
        plain = plain_catchup(live, incident=incident, now=now, tz=tz)
        started = time.monotonic()
        try:
            content, _ = await asyncio.wait_for(
                self._complete(messages, None, started + self.budget_s), timeout=self.budget_s
            )
        except Exception as exc:
            reason = _reason(exc, self.budget_s, self.endpoint)
            logger.warning("AI catch-up by %s %s; using the plain catch-up", self.origin, reason)
            return f"AI summary {reason} ({self.origin}); the timeline so far:\n{plain}", 0
        text, removed = clean_citations(content, valid)
        if removed:
            logger.info(
                "AI catch-up by %s cited %d entries that do not exist; removed",
                self.origin,
                removed,
            )
        if not text:
            return (
                f"The AI summary ({self.origin}) cited nothing real; the timeline so far:\n"
                f"{plain}"
            ), removed
        return text, removed

    async def write(self, *, system: str, prompt: str) -> Written:
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": self.redactor.redact(prompt)},
        ]
        started = time.monotonic()
        try:
            content, _ = await asyncio.wait_for(
                self._complete(messages, None, started + self.budget_s), timeout=self.budget_s
            )
        except Exception as exc:
            reason = _reason(exc, self.budget_s, self.endpoint)
            logger.warning("AI writing by %s %s", self.origin, reason)
            return Written(None, model=self.model, note=f"the AI model {reason} ({self.origin})")
        return Written(content, model=self.model)
