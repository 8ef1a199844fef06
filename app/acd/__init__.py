"""The ACD: campaigns, queues, agents, seats, calls, the router and its timers."""
