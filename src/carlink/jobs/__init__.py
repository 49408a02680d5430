"""The scheduler that runs due work from the database."""
