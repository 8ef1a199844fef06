"""``pledgeline payments``: a real process on the test database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Hotline
from tests.procs import run_cli
from tests.reconciliation_helpers import (
    BANK_SOURCE,
    bank_file,
    campaign,
    counts,
    get_pledge,
    pledge,
)


async def _cli(database_url: str, *args: str) -> tuple[int, str, str]:
    return await run_cli(database_url, "payments", *args)


async def test_cli_saves_a_source_and_imports_once_with_progress(
    hotline: Hotline, database_url: str, tmp_path: Path
) -> None:
    cid = await campaign(hotline)
    donors = [await pledge(hotline, cid, amount_minor=1000 + n) for n in range(12)]
    mapping = tmp_path / "banque.json"
    mapping.write_text(json.dumps(BANK_SOURCE))
    code, out, err = await _cli(database_url, "source", "banque", "--mapping", str(mapping))
    assert code == 0, err
    assert "source banque saved" in out

    rows = [
        ("04/12/2026", f"{(1000 + n) // 100},{(1000 + n) % 100:02d}", f"DON {d['reference']}", "X")
        for n, d in enumerate(donors)
    ]
    rows.append(("04/12/2026", "99,00", "VIR INCONNU", "Y"))
    export = tmp_path / "releve.csv"
    export.write_bytes(bank_file(rows))
    # The only campaign: --campaign-id may be left out.
    args = ("import", str(export), "--source", "banque")
    code, out, err = await _cli(database_url, *args)
    assert code == 0, err
    assert "13 lines, 12 payments recorded" in out and "1 to match by hand" in out
    # Not a terminal: a line per tenth, for reading the file and for recording it.
    assert "13/13 lines read" in err and "13/13 lines recorded" in err and "100%" in err
    for n, donor in enumerate(donors):
        paid = await get_pledge(hotline, donor["reference"])
        assert (paid["paid_minor"], paid["status"]) == (1000 + n, "paid")
    actors = await hotline.sql("SELECT actor FROM payment_imports")
    assert [a[0] for a in actors] == ["command-line"]

    # The same file again: nothing recorded twice.
    code, out, err = await _cli(database_url, *args, "--campaign-id", str(cid))
    assert code == 0, err
    assert "0 payments recorded" in out and "13 imported before" in out
    assert (await counts(hotline))[:2] == (12, 13)


async def test_cli_reports_a_bad_file_line_by_line_and_imports_nothing(
    hotline: Hotline, database_url: str, tmp_path: Path
) -> None:
    cid = await campaign(hotline)
    donor = await pledge(hotline, cid, amount_minor=2500)
    mapping = tmp_path / "banque.json"
    mapping.write_text(json.dumps(BANK_SOURCE))
    assert (await _cli(database_url, "source", "banque", "--mapping", str(mapping)))[0] == 0
    export = tmp_path / "releve.csv"
    export.write_bytes(
        bank_file(
            [
                ("04/12/2026", "25,00", f"DON {donor['reference']}", "X"),
                ("31/02/2026", "25,00", "DON", "Y"),
                ("04/12/2026", "25.00.00", "DON", "Z"),
            ]
        )
    )
    code, out, err = await _cli(
        database_url, "import", str(export), "--source", "banque", "--campaign-id", str(cid)
    )
    assert code == 2, out
    assert "2 problems; nothing was imported" in err
    assert "line 6, column 'Date opération': not a date in the form %d/%m/%Y" in err
    assert "line 7, column 'Crédit': not an amount" in err
    assert await counts(hotline) == (0, 0, 0)
    assert (await get_pledge(hotline, donor["reference"]))["paid_minor"] == 0
    # A mapping that is no mapping, an unknown source: refused, said so.
    mapping.write_text(json.dumps({"columns": {"date": "D"}}))
    code, _, err = await _cli(database_url, "source", "banque", "--mapping", str(mapping))
    assert code == 2 and "columns" in err
    code, _, err = await _cli(
        database_url, "import", str(export), "--source", "nope", "--campaign-id", str(cid)
    )
    assert code == 2 and "aucune source de paiement de ce nom (source)" in err
    # Two campaigns: which one must be said.
    r = await hotline.http.post("/campaigns", json={"name": "Another", "dialled_numbers": []})
    assert r.status_code == 201, r.text
    code, _, err = await _cli(database_url, "import", str(export), "--source", "banque")
    assert code == 2 and "quelle campagne ? donnez --campaign-id (campaign_id)" in err
