"""Names for the claims and leases a process takes, and whether their owner is gone.

A name is host:pid:nonce, so the database says who holds what, and a restarted process can
tell that a lease it finds was held by a process of this host that no longer runs (killed,
then restarted) and take it over at once instead of waiting for it to expire.
"""

from __future__ import annotations

import os
import socket
import uuid

_LIVE: set[str] = set()  # the names this process made: alive, whatever their pid says


def holder_name() -> str:
    """A name for this process's claims: readable in the database, unique across restarts."""
    name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    _LIVE.add(name)
    return name


def holder_gone(holder: str, *, me: str) -> bool:
    """Whether `holder` names a process of this host that no longer runs. Guessing wrong costs
    work, never a double send or apply: a takeover rechecks what the last holder may have done
    (see bot/mirror.py, adapters/inbox.py)."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or holder == me:
        return False
    pid = int(pid_text)
    if pid == os.getpid():  # an earlier process with our pid (a container restarted), or us
        return holder not in _LIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False
