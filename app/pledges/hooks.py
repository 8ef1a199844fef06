"""Where other packages act inside a pledge change's transaction.

The pledges package imports none of its followers; they register here in the app
factory (``app/plugins.py``). Hooks belong to one database (one app).

``payment_cancelled``: a payment was cancelled (a refund, a bounced cheque); the
receipts package cancels the pledge's tax receipt (app/receipts).
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from app.db import Database, UnitOfWork

# (unit of work, pledge row, reason)
PaymentCancelled = Callable[[UnitOfWork, Any, str], Awaitable[None]]


@dataclass
class PledgeHooks:
    payment_cancelled: list[PaymentCancelled] = field(default_factory=list)


_hooks: weakref.WeakKeyDictionary[Database, PledgeHooks] = weakref.WeakKeyDictionary()


def of(db: Database) -> PledgeHooks:
    hooks = _hooks.get(db)
    if hooks is None:
        hooks = _hooks[db] = PledgeHooks()
    return hooks
