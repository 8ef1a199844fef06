"""Asterisk driven through ARI: the configuration Pledgeline renders and the platform."""
