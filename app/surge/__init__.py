"""Surge mode and standby paging (docs/surge.md, "Surge mode and standby paging")."""
