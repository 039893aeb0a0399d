"""Authentication: password hashing now; tokens, sessions and roles with the web foundation."""
