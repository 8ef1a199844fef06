"""Payment reconciliation: providers' and banks' CSV exports matched to pledges."""
