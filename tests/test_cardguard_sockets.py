"""Card numbers in the screens' websocket commands, against a real uvicorn process on
both databases: every text argument of every command (and the command name, and
an argument no command has) is refused with an ``error`` naming the field
(``args.text``...), never echoing the value, and nothing happens: no broadcast
reaches the screens, the volunteer's state does not change.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from app.cardguard import luhn_runs
from tests.card_strategies import card_in_text, examples
from tests.test_sockets import (  # noqa: F401  (server is a fixture)
    Server,
    _command,
    _connect,
    _is,
    _supervisor_token,
    _until,
    _volunteer,
    server,
)

AGENT_ARGS = [
    ("pause", "reason"),
    ("end_wrap_up", "disposition"),
    ("transfer", "number"),
    ("script_choice", "script"),
    ("script_choice", "button"),
    ("ready", "note"),  # an argument the command does not have
]
SUPERVISOR_ARGS = [
    ("force_pause", "reason"),
    ("end_wrap_up", "disposition"),
    ("broadcast", "text"),
]


def _refused(reply: dict[str, Any], field: str, typed: str, digits: str) -> None:
    assert reply["type"] == "error", reply
    assert (reply["data"]["code"], reply["data"]["field"]) == ("card_number", field), reply
    text = json.dumps(reply, ensure_ascii=False)
    assert typed not in text and digits not in text and not list(luhn_runs(text))


async def test_card_numbers_in_socket_commands_are_refused(server: Server) -> None:  # noqa: F811
    volunteer = await _volunteer(server)
    supervisor = await _supervisor_token(server, volunteer.campaign_id)
    cards = iter(examples(card_in_text(), 12))
    agent_ws = await _connect(server, "agent", volunteer.token)
    supervisor_ws = await _connect(server, "supervisor", supervisor)
    try:
        await _until(agent_ws, _is("snapshot"))
        await _until(supervisor_ws, _is("snapshot"))
        for command, arg in AGENT_ARGS:
            digits, typed = next(cards)
            _refused(
                await _command(agent_ws, command, **{arg: typed}), f"args.{arg}", typed, digits
            )
        for command, arg in SUPERVISOR_ARGS:
            digits, typed = next(cards)
            args = {arg: typed, "agent_id": volunteer.agent_id}
            reply = await _command(supervisor_ws, command, **args)
            _refused(reply, f"args.{arg}", typed, digits)
        # The command name, and the client id (the error then carries no client id).
        digits, typed = next(cards)
        _refused(await _command(agent_ws, typed), "command", typed, digits)
        digits, typed = next(cards)
        await agent_ws.send(json.dumps({"type": "command", "client_id": typed, "command": "ready"}))
        reply = (await _until(agent_ws, lambda m: m["type"] == "error"))[-1]
        _refused(reply, "client_id", typed, digits)
        assert reply["data"]["client_id"] is None

        # Nothing happened: the volunteer is still logged out, and the first
        # broadcast the screens get is the ordinary one sent now.
        agent = (await server.admin.get(f"/agents/{volunteer.agent_id}")).json()
        assert agent["state"] == "logged_out", agent
        marker = f"hello {uuid.uuid4().hex[:6]}"
        assert (await _command(supervisor_ws, "broadcast", text=marker))["type"] == "ack"
        seen = await _until(agent_ws, _is("supervisor.broadcast"))
        broadcasts = [m for m in seen if m["type"] == "supervisor.broadcast"]
        assert [m["data"]["text"] for m in broadcasts] == [marker]
    finally:
        await agent_ws.close()
        await supervisor_ws.close()
