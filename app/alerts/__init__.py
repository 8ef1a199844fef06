"""Supervisor alerts kept and acknowledged (docs/realtime.md, Supervisor alerts)."""
