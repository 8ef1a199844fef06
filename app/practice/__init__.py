"""Practice calls on a training line (issue 15, point 4): docs/roster.md#practice-calls."""
