"""The screen's ``transfer`` command obeys the campaign's transfer numbers too, against
a real uvicorn process on both databases (tests/test_transfer_numbers.py: the API)."""

from __future__ import annotations

from tests.test_sockets import (  # noqa: F401  (server is a fixture)
    Server,
    _command,
    _connect,
    _incoming,
    _is,
    _until,
    _volunteer,
    server,
)


async def test_a_screen_transfers_out_only_to_allowed_numbers(server: Server) -> None:  # noqa: F811
    volunteer = await _volunteer(server)
    r = await server.admin.patch(
        f"/campaigns/{volunteer.campaign_id}", json={"transfer_numbers": ["+33*"]}
    )
    assert r.status_code == 200, r.text
    async with await _connect(server, "agent", volunteer.token) as ws:
        await _until(ws, _is("snapshot"))
        assert (await _command(ws, "ready"))["type"] == "ack"
        await _incoming(server, volunteer)
        offered = (await _until(ws, _is("call.offered")))[-1]
        call_id = offered["data"]["call_id"]
        assert (await _command(ws, "answer"))["type"] == "ack"
        await _until(ws, _is("call.connected"))

        # A premium-rate number under the campaign's "+33*": refused, the call stays.
        reply = await _command(ws, "transfer", number="+33899123456")
        assert reply["type"] == "error", reply
        assert (reply["data"]["code"], reply["data"]["field"]) == (
            "transfer_number_not_allowed",
            "number",
        )
        call = (await server.admin.get(f"/calls/{call_id}")).json()
        assert (call["state"], call["agent_id"]) == ("connected", volunteer.agent_id)

        assert (await _command(ws, "transfer", number="+33142000000"))["type"] == "ack"
        await _until(ws, _is("call.transferred", to_number="+33142000000"))
    call = (await server.admin.get(f"/calls/{call_id}")).json()
    assert (call["state"], call["end_reason"]) == ("transferred", "transferred_out")
