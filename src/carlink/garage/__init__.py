"""Vehicles, the model catalogue, main and secondary users, pairing, remote-access state, privacy."""
