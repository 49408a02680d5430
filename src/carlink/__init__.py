"""carlink: the cloud behind a car maker's connect offer."""

__version__ = "0.1.0"
