"""Car security: driver cards a dealer registers for a car (the alarms that use them come later)."""
