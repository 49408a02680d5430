"""Connectivity guidance per model and country (CON-1, CON-2, CON-5, CON-6, VEH-9): how a car goes online,
roaming, data off, the connection symbol, privacy mode and real-time traffic, generated from the model
catalogue (`carlink.protocol.catalogue`) and a per-country table (`countries`)."""
