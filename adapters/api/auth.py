"""API tokens: made, hashed and checked. Only a token's SHA-256 is stored; the token is a random
256-bit value, so a plain hash is enough (no salt or slow hash: nothing to brute-force)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from bot.models import ApiToken, TokenScope
from bot.ports import Actor
from storage.store import SqlStore

PREFIX = "opsroom_"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who calls: a token, or a person signed in by the SSO proxy's trusted header."""

    name: str
    scope: TokenScope
    private: bool  # sees private incidents
    token_id: int | None = None
    via: str = "token"  # or "header"

    @property
    def can_write(self) -> bool:
        return self.scope is TokenScope.WRITE

    @property
    def actor(self) -> Actor:
        # Entries written through the API are authored by the token's name.
        if self.via == "header":
            return Actor(platform="web", user_id=f"web:{self.name}", name=self.name)
        return Actor(platform="api", user_id=f"token:{self.token_id}", name=self.name)


async def authenticate(store: SqlStore, token: str) -> Principal | None:
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    digest = token_hash(token)
    async with store.unit() as u:
        row = await u.token_by_hash(digest)
    # The lookup is by hash already; comparing again in constant time costs nothing.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return principal_of(row)


def principal_of(row: ApiToken) -> Principal:
    return Principal(name=row.name, scope=row.scope, private=row.private, token_id=row.id)


class TokenError(ValueError):
    pass


async def create_token(
    store: SqlStore, *, name: str, scope: str, private: bool, now: datetime
) -> tuple[ApiToken, str]:
    """A new token named `name`; returns its row and the token itself (never stored)."""
    name = name.strip()
    if not name or len(name) > 64 or any(ch.isspace() for ch in name):
        raise TokenError(f'bad token name "{name}": use 1 to 64 characters without spaces')
    try:
        level = TokenScope(scope.lower())
    except ValueError:
        raise TokenError(f'unknown scope "{scope}": use read or write') from None
    token = new_token()
    async with store.unit() as u:
        if await u.token_by_name(name) is not None:
            raise TokenError(f'a token named "{name}" exists already: pick another name')
        row = ApiToken(
            name=name, scope=level, private=private, token_hash=token_hash(token), created_at=now
        )
        await u.add(row)
    return row, token
