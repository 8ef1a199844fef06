"""Events: the outbox table, the in-process bus, and (later) the websocket hub."""
