"""In-car ID login: profiles per ID, guest mode, service settings that follow the ID (VEH-7, VEH-8)."""
