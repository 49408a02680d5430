"""Car security: tracking packages, driver cards, theft alarms, the SOC, service and transport modes."""
