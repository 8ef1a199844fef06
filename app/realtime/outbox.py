"""Writing events into the current unit of work: ``app.outbox.emit``, named here too."""

from app.outbox import emit

__all__ = ["emit"]
