"""The car <-> cloud contract (docs/protocol.md): topics, message models, command signing, VINs.

The simulator imports only this package: whatever a car needs to know lives here.
"""
