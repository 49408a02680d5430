"""Facade of the maker's app API for existing community clients (RMT-4); maps onto our own services."""
