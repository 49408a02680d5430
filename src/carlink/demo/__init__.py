"""`carlink demo`: a deterministic demo world on SQLite with the embedded broker and a simulated fleet."""
