"""The packages that plug into the ACD core, registered on its hooks.

The one place that knows both the core and its plugins: the rules (screening,
rules on every call event, scripts) and the CTI (the caller look-up, the screen
pop on the offer). ``app.main`` calls :func:`install` for each app; a tool that
drives the call path directly (a benchmark) does the same.
"""

from __future__ import annotations

from app.acd import hooks
from app.acd.hooks import CommittedCall
from app.cti import service as cti
from app.cti.screenpop import CallHistory
from app.db import Database, UnitOfWork
from app.pledges import hooks as pledge_hooks
from app.receipts import service as receipts
from app.rules import service as rules
from app.rules.facts import known_caller_record


def _history_read_by_rules(uow: UnitOfWork, call: CommittedCall) -> CallHistory | None:
    """The caller's earlier calls, if the rules of the committed transaction read them."""
    if call.number is None:
        return None
    record = known_caller_record(uow.memo, call.campaign_id, call.number)
    if record is None:
        return None
    # The record holds the first legs of the number's calls, this one included.
    earlier = [t for t in record.times if t < call.received_at]
    return CallHistory(earlier_calls=len(earlier), last_call_at=max(earlier, default=None))


def install(db: Database, caller_lookup: cti.CallerLookup | None) -> None:
    call_hooks = hooks.of(db)
    rules.register(call_hooks)
    cti.register(call_hooks, caller_lookup, _history_read_by_rules)
    receipts.register(pledge_hooks.of(db))
