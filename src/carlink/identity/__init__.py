"""IDs: accounts, sign-in, sessions, security PIN, OAuth2/OIDC provider and tokens (ACC-1, ACC-7)."""
