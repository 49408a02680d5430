"""Partners and after-sales: countries and their contacts, dealers and staff, booking, recalls, manuals."""
