"""The packages that plug into the ACD core, registered on its hooks.

The one place that knows both the core and its plugins: the rules (screening,
rules on every call event, scripts) and the CTI (the caller look-up, the screen
pop on the offer); also the rules on the surge monitor's switches, the receipts on
the pledges' hook, and the receipts' legal hold on the erasure of personal data.
``app.main`` calls :func:`install` for each app; a tool that drives the call path
directly (a benchmark) does the same.
"""

from __future__ import annotations

from app.acd import hooks
from app.acd.hooks import CommittedCall
from app.cti import service as cti
from app.cti.screenpop import CallHistory
from app.db import Database, UnitOfWork
from app.pledges import hooks as pledge_hooks
from app.privacy import retention
from app.privacy.erasure import register_legal_hold
from app.receipts import personal_data as receipts_personal_data
from app.receipts import service as receipts
from app.rules import service as rules
from app.rules.facts import known_caller_record
from app.surge import hooks as surge_hooks
from app.surge import personal_data as surge_personal_data


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
    rules.register_surge(surge_hooks.of(db))
    cti.register(call_hooks, caller_lookup, _history_read_by_rules)
    receipts.register(pledge_hooks.of(db))
    install_personal_data()


def install_personal_data() -> None:
    """What other packages add to the personal-data rules: the tax receipts' legal
    hold on an erasure and their retention period, the SMS pages' retention. The
    purge's command line calls this too (it runs no app). Both registries ignore
    repeats."""
    register_legal_hold(receipts_personal_data.receipts_kept)
    retention.register(receipts_personal_data.RETENTION)
    retention.register(surge_personal_data.RETENTION)
