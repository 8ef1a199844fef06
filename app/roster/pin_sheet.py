"""A site's PIN sheet: an HTML page made for printing, one line per volunteer."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Protocol


class IssuedLogin(Protocol):
    @property
    def display_name(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def pin(self) -> str: ...


def render_pin_sheet(
    site_name: str, organisation: str, campaign_id: int, issued: Sequence[IssuedLogin]
) -> str:
    rows = "\n".join(
        f"<tr><td>{escape(i.display_name)}</td><td><code>{escape(i.username)}</code></td>"
        f"<td><code class=pin>{escape(i.pin)}</code></td><td class=sign></td></tr>"
        for i in issued
    )
    title = f"PINs - {escape(site_name)} ({escape(organisation)})"
    empty = "" if issued else "<p>No volunteer at this site needed a PIN.</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="robots" content="noindex">
<style>
body {{ font-family: sans-serif; margin: 1.5cm; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #888; padding: .35em .6em; text-align: left; }}
td.sign {{ width: 30%; }}
.pin {{ font-size: 1.2em; letter-spacing: .1em; }}
@media print {{ .no-print {{ display: none; }} }}
</style></head>
<body>
<h1>{title}</h1>
<p>Campaign {campaign_id}. Log in on the volunteer screen with your login, this
campaign number and your PIN. Keep this sheet out of sight; cut your line off
and take it with you. These PINs are shown this once: a lost PIN is re-issued.</p>
<button class="no-print" onclick="window.print()">Print</button>
{empty}
<table id="pin-sheet"><thead><tr><th>Volunteer</th><th>Login</th><th>PIN</th>
<th>Signature</th></tr></thead>
<tbody>
{rows}
</tbody></table>
</body></html>
"""
