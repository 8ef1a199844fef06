"""The volunteer's browser softphone: short-lived credentials per login session."""
