"""The operator docs stay true to the code: every setting is in the README's table."""

from __future__ import annotations

from pathlib import Path

from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- settings:start -->", 1)[1].split("<!-- settings:end -->", 1)[0]
    documented = {
        line.split("`")[1] for line in table.splitlines() if line.startswith("| `PLEDGELINE_")
    }
    expected = {f"PLEDGELINE_{name.upper()}" for name in Settings.model_fields}
    assert documented == expected, {
        "missing": sorted(expected - documented),
        "stale": sorted(documented - expected),
    }
