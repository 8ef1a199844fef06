"""The people of the show: partner sites, the roster of volunteers, their PINs."""
