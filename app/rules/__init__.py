"""Rules and scripts as data: safe conditions over call facts, actions, volunteer scripts."""
