"""Agent and call state machines.

Each transition is a named function that checks the current state and refuses an
illegal move with ``IllegalTransition`` (HTTP 409). The functions change only the
in-memory row; the service layer writes the row and its event in one transaction.
"""

from __future__ import annotations

import enum

from app.errors import Conflict
from app.i18n import N_


class AgentState(enum.StrEnum):
    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    RESERVED = "reserved"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"
    # Needs support (a warm hand-over): the caller is on hold while the specialists'
    # queue is rung; the volunteer stays on the call until a specialist answers
    # (then wrap-up) or the fallback time passes (then on the call again).
    CONSULTING = "consulting"


class CallState(enum.StrEnum):
    RECEIVED = "received"
    QUEUED = "queued"
    OFFERED = "offered"
    CONNECTED = "connected"
    WRAP_UP = "wrap_up"
    COMPLETED = "completed"
    ABANDONED = "abandoned"
    REJECTED = "rejected"
    OVERFLOWED = "overflowed"
    TRANSFERRED = "transferred"
    FAILED = "failed"
    # Callbacks (app/acd/callbacks.py, docs/surge.md#callbacks).
    # An inbound call whose caller asked to be called back (neither abandoned nor answered).
    CALLBACK_REQUESTED = "callback_requested"
    # A callback accepted by its volunteer: the platform is dialling the caller.
    DIALING = "dialing"
    # A callback whose dialling went unanswered, waiting for its next attempt.
    RETRY_WAIT = "retry_wait"
    # A callback not completed within its queue's expiry.
    EXPIRED = "expired"
    # A consult leg (a warm hand-over) that no specialist answered in time, or whose
    # caller hung up first: it ends without anyone having talked on it.
    WITHDRAWN = "withdrawn"


CALL_END_STATES = frozenset(
    {
        CallState.COMPLETED,
        CallState.ABANDONED,
        CallState.REJECTED,
        CallState.OVERFLOWED,
        CallState.TRANSFERRED,
        CallState.FAILED,
        CallState.CALLBACK_REQUESTED,
        CallState.EXPIRED,
        CallState.WITHDRAWN,
    }
)
CALL_LIVE_STATES = frozenset(set(CallState) - CALL_END_STATES)

# The agent states in which the agent holds a call.
AGENT_BUSY_STATES = frozenset(
    {AgentState.RESERVED, AgentState.ON_CALL, AgentState.CONSULTING, AgentState.WRAP_UP}
)


class IllegalTransition(Conflict):
    """A transition asked of an entity whose current state does not allow it (409)."""

    def __init__(self, entity: str, action: str, state: str) -> None:
        self.entity = entity
        self.action = action
        self.state = state
        super().__init__(
            N_("cannot {action} a {entity} that is {state}"),
            code=f"illegal_{entity}_transition",
            action=action,
            entity=entity,
            state=state,
        )


# action -> (states it may start from, state it leads to)
AGENT_TRANSITIONS: dict[str, tuple[frozenset[AgentState], AgentState]] = {
    "login": (frozenset({AgentState.LOGGED_OUT}), AgentState.PAUSED),
    "ready": (frozenset({AgentState.PAUSED}), AgentState.AVAILABLE),
    "pause": (frozenset({AgentState.AVAILABLE, AgentState.PAUSED}), AgentState.PAUSED),
    "logout": (frozenset({AgentState.AVAILABLE, AgentState.PAUSED}), AgentState.LOGGED_OUT),
    "reserve": (frozenset({AgentState.AVAILABLE}), AgentState.RESERVED),
    "release": (frozenset({AgentState.RESERVED}), AgentState.AVAILABLE),
    "miss": (frozenset({AgentState.RESERVED}), AgentState.PAUSED),
    "connect": (frozenset({AgentState.RESERVED}), AgentState.ON_CALL),
    "start_wrap_up": (frozenset({AgentState.ON_CALL}), AgentState.WRAP_UP),
    "end_wrap_up": (frozenset({AgentState.WRAP_UP}), AgentState.AVAILABLE),
    # The warm hand-over (lifecycle.consult): the caller on hold, a consult leg rung...
    "consult": (frozenset({AgentState.ON_CALL}), AgentState.CONSULTING),
    # ...a specialist answered: the caller is theirs, the volunteer wraps up...
    "hand_over": (frozenset({AgentState.CONSULTING}), AgentState.WRAP_UP),
    # ...or nobody in time: the caller is back with the volunteer...
    "resume": (frozenset({AgentState.CONSULTING}), AgentState.ON_CALL),
    # ...or the caller (or the volunteer's seat) hung up meanwhile.
    "end_consult": (frozenset({AgentState.CONSULTING}), AgentState.WRAP_UP),
}

CALL_TRANSITIONS: dict[str, tuple[frozenset[CallState], CallState]] = {
    "enqueue": (frozenset({CallState.RECEIVED}), CallState.QUEUED),
    "offer": (frozenset({CallState.QUEUED}), CallState.OFFERED),
    "requeue": (frozenset({CallState.OFFERED}), CallState.QUEUED),
    # Overflow to another queue: back to received, then enqueued there.
    "move": (frozenset({CallState.QUEUED}), CallState.RECEIVED),
    "connect": (frozenset({CallState.OFFERED}), CallState.CONNECTED),
    "start_wrap_up": (frozenset({CallState.CONNECTED}), CallState.WRAP_UP),
    "complete": (frozenset({CallState.WRAP_UP}), CallState.COMPLETED),
    "abandon": (
        frozenset({CallState.RECEIVED, CallState.QUEUED, CallState.OFFERED}),
        CallState.ABANDONED,
    ),
    "reject": (frozenset({CallState.RECEIVED, CallState.QUEUED}), CallState.REJECTED),
    "overflow": (frozenset({CallState.RECEIVED, CallState.QUEUED}), CallState.OVERFLOWED),
    "transfer": (
        frozenset({CallState.QUEUED, CallState.CONNECTED}),
        CallState.TRANSFERRED,
    ),
    "fail": (frozenset(CALL_LIVE_STATES), CallState.FAILED),
    # Callbacks: the caller pressed the offered digit while waiting...
    "request_callback": (frozenset({CallState.QUEUED}), CallState.CALLBACK_REQUESTED),
    # ...the callback's volunteer accepted it: the platform dials...
    "dial": (frozenset({CallState.OFFERED}), CallState.DIALING),
    # ...the caller answered (then the call goes on as any connected call)...
    "dial_answered": (frozenset({CallState.DIALING}), CallState.CONNECTED),
    # ...or did not: another attempt later...
    "dial_unanswered": (frozenset({CallState.DIALING}), CallState.RETRY_WAIT),
    "retry": (frozenset({CallState.RETRY_WAIT}), CallState.QUEUED),
    # ...until it is too late.
    "expire": (frozenset({CallState.QUEUED, CallState.RETRY_WAIT}), CallState.EXPIRED),
    # A consult leg taken back (no specialist in time, or the caller gone). The leg
    # it consults for stays connected meanwhile (caller on hold), and ends
    # ``transferred`` (the ``transfer`` step) when a specialist answers.
    "withdraw": (
        frozenset({CallState.RECEIVED, CallState.QUEUED, CallState.OFFERED}),
        CallState.WITHDRAWN,
    ),
}


def next_agent_state(current: str, action: str) -> AgentState:
    allowed, target = AGENT_TRANSITIONS[action]
    if current not in allowed:
        raise IllegalTransition("agent", action, current)
    return target


def next_call_state(current: str, action: str) -> CallState:
    allowed, target = CALL_TRANSITIONS[action]
    if current not in allowed:
        raise IllegalTransition("call", action, current)
    return target
