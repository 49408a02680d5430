"""Templates, static files and the portal's pages."""
