"""The events table lives in ``app.outbox`` (the core writes it); named here too for
the realtime package's readers."""

from app.outbox import Event, message_of

__all__ = ["Event", "message_of"]
