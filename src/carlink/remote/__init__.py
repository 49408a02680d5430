"""Remote commands, the security-PIN challenge, the command lifecycle and its push to clients (RMT-1)."""
