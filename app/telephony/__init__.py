"""The port to the telephony platform and its adapters (simulated, HTTP webhook)."""
