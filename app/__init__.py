"""Pledgeline: a real-time contact-centre backend for telethon pledge hotlines."""
