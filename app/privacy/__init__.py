"""Donors' personal data: retention (the purge), and a donor's access and erasure
requests (docs/personal-data.md)."""
