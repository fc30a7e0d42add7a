"""Who may do what: staff users, API keys, sessions, roles and permissions."""
