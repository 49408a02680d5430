"""The requirement IDs of the product's requirements list and the help centre's topics.

The list is kept here so the platform needs nothing outside the package at run time; an article that cites
an ID not in it is refused at start-up, and a test proves every ID is answered by some article.
"""

from __future__ import annotations

from carlink.i18n import N_

_COUNTS = {
    "ACC": 8,
    "VEH": 9,
    "RMT": 4,
    "CON": 6,
    "STO": 12,
    "FOD": 8,
    "OTA": 4,
    "SEC": 4,
    "PRV": 5,
    "PAR": 4,
    "HLP": 1,
}
REQUIREMENT_IDS: tuple[str, ...] = tuple(
    f"{area}-{number}" for area, count in _COUNTS.items() for number in range(1, count + 1)
)

# The topics in the order the help centre lists them, with their headings (translated where shown).
TOPICS: dict[str, str] = {
    "account": N_("Your ID and account"),
    "vehicles": N_("Vehicles, users and pairing"),
    "remote": N_("Remote services and vehicle status"),
    "connectivity": N_("Data connection and WiFi"),
    "store": N_("Store and contracts"),
    "functions": N_("Functions on demand"),
    "updates": N_("Software updates"),
    "security": N_("Car security"),
    "privacy": N_("Privacy and your data"),
    "partners": N_("Partners, service and manuals"),
    "help": N_("Using the help centre"),
}
