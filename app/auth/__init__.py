"""Users, roles, login sessions and who may do what."""
