"""Development stand-ins for Entra ID: a signing key that mints tokens, and a sample directory."""
