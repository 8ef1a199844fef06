"""The events table lives in ``app.outbox`` (the core writes it); named here too for
the realtime package's readers."""

from app.outbox import Event

__all__ = ["Event"]
