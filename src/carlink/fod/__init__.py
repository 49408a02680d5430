"""Functions on demand and data packages (issue 6). So far: signed data packages (Uptane-style metadata,
docs/protocol.md 'Signed data packages') and their delivery over HTTP with range requests."""
