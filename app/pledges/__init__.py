"""Pledges: capture, card-number guard, idempotency, payments and totals."""
