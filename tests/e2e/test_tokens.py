"""`opsroom token create|list|revoke` as a person runs them: the token is shown once, alone on
the last line; only its hash is kept; a revoked token is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.e2e.test_cli import opsroom

pytestmark = pytest.mark.e2e


def test_create_list_revoke(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ops.db'}"
    made = opsroom(tmp_path, "token", "create", "--name", "ci", "--scope", "write", DATABASE_URL=db)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("opsroom_") and " " not in token
    stored = sqlite3.connect(tmp_path / "ops.db").execute("SELECT token_hash FROM apitoken")
    assert token not in str(stored.fetchall())

    again = opsroom(tmp_path, "token", "create", "--name", "ci", "--scope", "read", DATABASE_URL=db)
    assert again.returncode == 2 and 'a token named "ci" exists already' in again.stderr
    bad = opsroom(tmp_path, "token", "create", "--name", "x", "--scope", "admin", DATABASE_URL=db)
    assert bad.returncode == 2 and 'unknown scope "admin": use read or write' in bad.stderr

    listed = opsroom(tmp_path, "token", "list", DATABASE_URL=db)
    assert "ci\twrite\tpublic only" in listed.stdout and "active" in listed.stdout
    assert token not in listed.stdout

    revoked = opsroom(tmp_path, "token", "revoke", "ci", DATABASE_URL=db)
    assert revoked.returncode == 0 and "Revoked ci." in revoked.stdout
    assert "revoked" in opsroom(tmp_path, "token", "list", DATABASE_URL=db).stdout
    missing = opsroom(tmp_path, "token", "revoke", "ci", DATABASE_URL=db)
    assert missing.returncode == 2 and 'no active token named "ci"' in missing.stderr
