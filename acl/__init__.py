"""Who may see what: principals, access lists, the security filter, token validation."""
