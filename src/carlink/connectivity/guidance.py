"""How a car goes online, generated from the model catalogue (VEH-1, CON-1, CON-2, CON-5, VEH-6, VEH-9).

One function, `build_guide`, turns a `ModelProfile` (plus the car's model year and a country) into sections
of steps and facts. Every branch follows a field of the profile — its data connections, its menus, its
privacy scope, where its connection symbol sits — never a model's key, so a new model in the catalogue gets
a correct guide without a line here.

Texts are gettext messages (`Text`) translated when they are read, so one guide serves any language. Menu
paths come from the catalogue's one table (`carlink.protocol.catalogue.MENU_PATHS`, shared with the owner's
manual) and are translated too: the car shows its menus in the language set in the car.

A guide is for the person's home country or for a country they visit (CON-2): at home it says whether the
car's eSIM plan is sold there; abroad, whether the car can roam there, because the plan from home roams.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Union

from carlink.connectivity.countries import (
    CountryConnectivity,
    TrafficCoverage,
    country_connectivity,
    country_name,
)
from carlink.i18n import N_, _
from carlink.protocol.catalogue import (
    DataConnection,
    InfotainmentMenu,
    MenuPaths,
    ModelProfile,
    PrivacyScope,
    SymbolPosition,
)
from carlink.protocol.messages import Network

MIN_HOTSPOT_PASSWORD = 8  # characters the car asks for before it tries a hotspot (CON-1)


@dataclass(frozen=True)
class CountryName:
    """A country's name, looked up in the language the text is read in."""

    code: str

    def __str__(self) -> str:
        return country_name(self.code)


Value = Union[str, int, "Text", CountryName]


@dataclass(frozen=True)
class Text:
    """A gettext message and its values; values that are `Text` are translated too."""

    message: str
    values: Mapping[str, Value] = field(default_factory=dict)

    def __str__(self) -> str:
        return _(self.message, **{name: str(value) for name, value in self.values.items()})


class ItemKind(StrEnum):
    STEP = "step"  # something to do in the car or on the phone, in order
    FACT = "fact"  # how it is
    WARNING = "warning"  # a cost or a limit to know before
    STATE = "state"  # one look of the connection symbol


@dataclass(frozen=True)
class Item:
    key: str  # stable, for scripts and tests: "roaming.enable"
    kind: ItemKind
    text: Text
    network: Network | None = None  # for a symbol state: the network the car reports when it looks so


@dataclass(frozen=True)
class Section:
    key: str
    title: Text
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Guide:
    model: ModelProfile
    model_year: int | None
    country_code: str
    country: CountryConnectivity | None  # None: we have no data for this country
    home_country_code: str  # the car's home market; another `country_code` is a trip abroad
    roaming_menu: InfotainmentMenu
    data_menu: InfotainmentMenu
    sections: tuple[Section, ...]

    @property
    def abroad(self) -> bool:
        return self.country_code != self.home_country_code

    def section(self, key: str) -> Section:
        return next(section for section in self.sections if section.key == key)

    def keys(self) -> list[str]:
        return [item.key for section in self.sections for item in section.items]

    def facts(self) -> dict[str, Any]:
        """The guide's facts as plain values, for the JSON API and scripts."""
        country = self.country
        return {
            "connections": [c.value for c in self.model.data_connections],
            "esim_only": self.model.esim_only,
            "roaming_automatic": self.roaming_menu is InfotainmentMenu.AUTOMATIC,
            "roaming_menu": self.roaming_menu.value,
            "data_menu": self.data_menu.value,
            "privacy_scope": self.model.privacy_scope.value,
            "symbol_position": self.model.symbol_position.value,
            "country": self.country_code,
            "home_country": self.home_country_code,
            "abroad": self.abroad,
            "country_known": country is not None,
            "roaming_available": country.roaming if country else None,
            "traffic_coverage": country.traffic.value if country else None,
            "esim_plan_offered": country.esim_plan if country else None,
        }


# --- menu paths that are not per menu family (the family's own paths: catalogue.MENU_PATHS) -----------------

_PRIVACY_ALL_SERVICES_PATH = N_("Settings > Privacy and carlink settings > Privacy mode > All services")
_MAP_PATH = N_("MAP > map settings > Real-time traffic")

_POSITIONS = {
    SymbolPosition.TOP_RIGHT: N_("top right"),
    SymbolPosition.BOTTOM_LEFT: N_("bottom left"),
}


# --- the guide ------------------------------------------------------------------------------------------


def build_guide(
    model: ModelProfile, *, model_year: int | None, country: str, home_country: str | None = None
) -> Guide:
    """The guide for a car of `model` built in `model_year`, for use in `country` (ISO 3166 alpha-2) by a
    person who lives in `home_country` (the same as `country` when not given)."""
    roaming_menu, data_menu = model.menus(model_year)
    roaming_paths, data_paths = model.menu_paths(model_year)
    code = country.upper()
    home = (home_country or code).upper()
    found = country_connectivity(code)
    place = CountryName(code)
    # On a trip, the car's eSIM plan is the one sold in its home country (None: at home).
    abroad = Home(country_connectivity(home), CountryName(home)) if code != home else None
    sections = (
        _connections(model, data_paths, found, place, abroad),
        _roaming(model, roaming_menu, roaming_paths, found, place, abroad),
        _data_off(model, data_paths),
        _symbol(model),
        _privacy(model),
        _traffic(model, found, place),
    )
    return Guide(model, model_year, code, found, home, roaming_menu, data_menu, sections)


@dataclass(frozen=True)
class Home:
    """The car's home country on a trip: whether its eSIM plan exists decides what roams."""

    country: CountryConnectivity | None
    place: CountryName


def _step(key: str, message: str, **values: Value) -> Item:
    return Item(key, ItemKind.STEP, Text(message, values))


def _fact(key: str, message: str, **values: Value) -> Item:
    return Item(key, ItemKind.FACT, Text(message, values))


def _warning(key: str, message: str, **values: Value) -> Item:
    return Item(key, ItemKind.WARNING, Text(message, values))


def _state(key: str, network: Network, message: str) -> Item:
    return Item(key, ItemKind.STATE, Text(message), network)


def _no_data(key: str, place: CountryName) -> Item:
    return _fact(
        key,
        N_("%(country)s: we have no data for this country yet; ask your carlink partner what works there."),
        country=place,
    )


def _connections(
    model: ModelProfile,
    paths: MenuPaths,
    country: CountryConnectivity | None,
    place: CountryName,
    abroad: Home | None,
) -> Section:
    ways = model.data_connections
    if len(ways) == 1:
        items = [_fact("connections.intro", N_("This car goes online in one way only:"))]
    else:
        items = [
            _fact(
                "connections.intro",
                N_("This car can go online in %(count)s ways; use the one that suits you:"),
                count=len(ways),
            )
        ]
    if DataConnection.ESIM in ways:
        items += _esim(model, country, place, abroad)
    if DataConnection.INSERTED_SIM in ways:
        items += _inserted_sim(paths)
    if DataConnection.PHONE_HOTSPOT in ways:
        items += _hotspot(paths)
    if DataConnection.ESIM in ways and DataConnection.INSERTED_SIM in ways:
        # REQ: CON-1 — the unit cannot carry eSIM data and inserted-SIM telephony at once.
        items.append(
            _warning(
                "connections.esim_or_sim_calls",
                N_(
                    "Data over the built-in eSIM and calls over an inserted SIM card do not work at the same "
                    "time: while the eSIM carries data, make calls with a phone paired over Bluetooth."
                ),
            )
        )
    if DataConnection.INSERTED_SIM in ways or DataConnection.PHONE_HOTSPOT in ways:
        items.append(
            _warning(
                "connections.calls_on_2g",
                N_(
                    "A phone call over a 2G network (GSM/EDGE) switches the data connection off until the "
                    "call ends. Over LTE, many providers let data and calls run at once."
                ),
            )
        )
    # The car shows its menus in the language set in the car; the paths here are translated to match.
    items.append(
        _fact(
            "connections.menu_names",
            N_(
                "This guide gives menu names in its own language. The car shows its menus in the language "
                "set in the car, so if that is another one, look for the names in your car's language."
            ),
        )
    )
    return Section("connections", Text(N_("How this car goes online")), tuple(items))


def _esim(
    model: ModelProfile, country: CountryConnectivity | None, place: CountryName, abroad: Home | None
) -> list[Item]:
    items = [
        _fact(
            "connections.esim",
            N_(
                "Built-in eSIM: the car has its own mobile connection. You can still make calls at the same "
                "time with a phone paired over Bluetooth."
            ),
        )
    ]
    if model.esim_only:
        items.append(
            _fact(
                "connections.esim_only",
                N_(
                    "This model has no slot for a SIM card of your own, so there is no SIM PIN or access "
                    "point to set up."
                ),
            )
        )
    if country is None:
        items.append(_no_data("connections.esim_plan", place))
    elif abroad:
        items.append(_esim_abroad(model, country, place, abroad))
    else:
        items.append(_esim_at_home(model, country, place))
    return items


def _esim_at_home(model: ModelProfile, country: CountryConnectivity, place: CountryName) -> Item:
    """At home the question is whether the eSIM's data plan is sold here (CON-1)."""
    if country.esim_plan:
        return _fact(
            "connections.esim_plan",
            N_("%(country)s: an eSIM data plan is offered here; buy it in the carlink store."),
            country=place,
        )
    if model.esim_only:
        return _warning(
            "connections.esim_plan",
            N_(
                "%(country)s: no eSIM data plan is offered here yet, and this model has no other way "
                "online, so its connected services do not work there."
            ),
            country=place,
        )
    return _warning(
        "connections.esim_plan",
        N_(
            "%(country)s: no eSIM data plan is offered here yet; use a SIM card of your own or your "
            "phone's hotspot there."
        ),
        country=place,
    )


def _esim_abroad(model: ModelProfile, country: CountryConnectivity, place: CountryName, home: Home) -> Item:
    """Abroad the plan bought at home roams (CON-2): whether a plan is sold in the visited country does not
    matter, whether one is sold at home and roaming is available here does."""
    if home.country is None or not home.country.esim_plan:
        return _warning(
            "connections.esim_plan",
            N_(
                "%(home)s: no eSIM data plan is sold there, so the built-in eSIM has no data plan to take "
                "abroad either."
            )
            if not model.esim_only
            else N_(
                "%(home)s: no eSIM data plan is sold there, so the built-in eSIM has no data plan to take "
                "abroad either; this model has no other way online and stays offline."
            ),
            home=home.place,
        )
    if country.roaming:
        return _fact(
            "connections.esim_plan",
            N_("%(country)s: the eSIM data plan from your home country works here too, through roaming."),
            country=place,
        )
    if model.esim_only:
        return _warning(
            "connections.esim_plan",
            N_(
                "%(country)s: roaming is not available, so the eSIM data plan from your home country does "
                "not work here; this model has no other way online and stays offline there."
            ),
            country=place,
        )
    return _warning(
        "connections.esim_plan",
        N_(
            "%(country)s: roaming is not available, so the eSIM data plan from your home country does not "
            "work here; use a local SIM card of your own or your phone's hotspot there."
        ),
        country=place,
    )


def _inserted_sim(paths: MenuPaths) -> list[Item]:
    return [
        _step(
            "connections.sim",
            N_("Your own SIM card: put a SIM card with a data plan into the car's SIM slot."),
        ),
        _step(
            "connections.sim_pin",
            N_("So that the car does not ask for the SIM card's PIN at every start, store it: %(path)s."),
            path=Text(paths.sim_pin),
        ),
        _step(
            "connections.sim_apn",
            N_(
                "If your provider names an access point (APN) for data, enter it in the data connection "
                "settings (%(path)s). Not sure which one? Your provider will tell you."
            ),
            path=Text(paths.mobile_data),
        ),
    ]


def _hotspot(paths: MenuPaths) -> list[Item]:
    return [
        _step("connections.hotspot", N_("Your phone's WiFi hotspot: switch the hotspot on in your phone.")),
        _step(
            "connections.hotspot_search",
            N_("In the car, open %(path)s or tap the connection symbol; the car looks for hotspots nearby."),
            path=Text(paths.hotspot),
        ),
        _step(
            "connections.hotspot_password",
            N_(
                "Choose your phone's hotspot and type its password. The car needs a password of at least "
                "%(length)s characters; set a longer one in your phone if yours is shorter."
            ),
            length=MIN_HOTSPOT_PASSWORD,
        ),
        _fact("connections.hotspot_volume", N_("Over the hotspot, the car uses your phone's data volume.")),
    ]


def _roaming(
    model: ModelProfile,
    menu: InfotainmentMenu,
    paths: MenuPaths | None,
    country: CountryConnectivity | None,
    place: CountryName,
    abroad: Home | None,
) -> Section:
    if paths is None:
        items = [
            _fact(
                "roaming.automatic",
                N_("Roaming switches on by itself on this model: there is nothing to set in the car."),
            )
        ]
    else:
        items = [
            _step(
                "roaming.enable",
                N_("Before you drive abroad, open %(path)s and tick “Enable roaming”."),
                path=Text(paths.roaming),
            ),
            _fact(
                "roaming.off_by_default",
                N_("Roaming stays off until you switch it on; abroad, the car is offline without it."),
            ),
        ]
    if menu is InfotainmentMenu.DEVICE_MANAGER_DATA_CONNECTION:
        items.append(
            _fact(
                "roaming.device_manager_place",
                N_("Depending on the model year, the device manager is under Settings or under Devices."),
            )
        )
    items.append(_roaming_here(model, country, place, abroad))
    ways = model.data_connections
    if DataConnection.INSERTED_SIM in ways or DataConnection.PHONE_HOTSPOT in ways:
        # REQ: CON-2 — the cloud warns about roaming costs; they come from a SIM card or phone plan of the
        # person's own, so an eSIM-only car gets no advice about "your provider".
        items.append(
            _warning(
                "roaming.costs",
                N_(
                    "Roaming can cost extra, depending on your mobile plan and the country you visit. Ask "
                    "your provider for an all-inclusive roaming option before you travel."
                ),
            )
        )
    plan_roams = abroad is None or (
        country is not None and country.roaming and abroad.country is not None and abroad.country.esim_plan
    )
    if DataConnection.ESIM in ways and plan_roams:
        items.append(
            _fact(
                "roaming.esim_no_charges",
                N_("Data over the built-in eSIM's carlink plan has no roaming charges."),
            )
        )
    return Section("roaming", Text(N_("Roaming abroad")), tuple(items))


def _roaming_here(
    model: ModelProfile, country: CountryConnectivity | None, place: CountryName, abroad: Home | None
) -> Item:
    """Roaming in the guide's country matters only on a trip; at home, point to the country chooser."""
    if not abroad:
        return _fact(
            "roaming.trip",
            N_(
                "At home the car does not roam. Planning a trip? Choose the country you will visit to see "
                "whether the car can roam there."
            ),
        )
    if country is None:
        return _no_data("roaming.country", place)
    if country.roaming:
        return _fact("roaming.country", N_("%(country)s: roaming is available."), country=place)
    if model.esim_only:
        return _warning(
            "roaming.country",
            N_("%(country)s: roaming is not available, so this car stays offline there."),
            country=place,
        )
    return _warning(
        "roaming.country",
        N_(
            "%(country)s: roaming is not available; there, the car goes online only with a local SIM card "
            "or your phone's hotspot."
        ),
        country=place,
    )


def _data_off(model: ModelProfile, paths: MenuPaths) -> Section:
    items = [
        _step(
            "data_off.switch",
            N_("To switch mobile data off, open %(path)s and choose Off."),
            path=Text(paths.mobile_data),
        )
    ]
    if model.privacy_scope is PrivacyScope.ALL_SERVICES:
        items.append(
            _step(
                "data_off.privacy_all_services",
                N_(
                    "To stop every connected service at once, turn on privacy mode for all services: "
                    "%(path)s."
                ),
                path=Text(_PRIVACY_ALL_SERVICES_PATH),
            )
        )
    # REQ: VEH-6, PRV-4 — data off stops all connectivity, and nothing withheld is stored or shown.
    items.append(
        _fact(
            "data_off.effect",
            N_(
                "With data off the car is offline: remote services, status updates and real-time traffic "
                "stop until you switch data on again. What the car does not send, carlink neither stores "
                "nor shows."
            ),
        )
    )
    return Section("data_off", Text(N_("Switching data off")), tuple(items))


def _symbol(model: ModelProfile) -> Section:
    items = [
        _fact(
            "symbol.position",
            N_("The connection symbol sits %(position)s on the centre display."),
            position=Text(_POSITIONS[model.symbol_position]),
        ),
        _state("symbol.lte", Network.LTE, N_("“LTE”: online over an LTE network.")),
        _state("symbol.3g", Network.UMTS, N_("“3G”: online over a UMTS (3G) network.")),
        _state("symbol.edge", Network.EDGE, N_("“E”: online over a GSM/EDGE network, which is slow.")),
    ]
    if DataConnection.PHONE_HOTSPOT in model.data_connections:
        items.append(
            _state("symbol.wifi", Network.WIFI, N_("WiFi symbol: online through your phone's hotspot."))
        )
    items.append(_state("symbol.none", Network.NONE, N_("No letter: the car has no data connection.")))
    return Section("symbol", Text(N_("The connection symbol")), tuple(items))


def _privacy(model: ModelProfile) -> Section:
    if model.privacy_scope is PrivacyScope.ALL_SERVICES:
        items = [
            _fact(
                "privacy.scope",
                N_(
                    "On this model, privacy mode pauses every connected service: remote services, the car's "
                    "location, real-time traffic and the other online services stop until you switch it off."
                ),
            ),
            _step(
                "privacy.switch", N_("Switch it in the car: %(path)s."), path=Text(_PRIVACY_ALL_SERVICES_PATH)
            ),
        ]
    else:
        items = [
            _fact(
                "privacy.scope",
                N_(
                    "On this model, privacy mode pauses remote access: carlink refuses remote services and "
                    "hides the car's location. Navigation, traffic and the other services keep working."
                ),
            ),
            _step(
                "privacy.switch", N_("Switch it in the car's privacy settings; only the car can switch it.")
            ),
        ]
    items.append(
        _fact(
            "privacy.honoured",
            N_("While privacy mode is on, carlink keeps and shows nothing the car withholds."),
        )
    )
    return Section("privacy", Text(N_("Privacy mode")), tuple(items))


_COVERAGE = {
    TrafficCoverage.FULL: N_("%(country)s: traffic data covers motorways, main roads and larger cities."),
    TrafficCoverage.PARTIAL: N_("%(country)s: traffic data covers motorways and main roads only."),
    TrafficCoverage.NONE: N_("%(country)s: real-time traffic is not offered here yet."),
}


def _traffic(model: ModelProfile, country: CountryConnectivity | None, place: CountryName) -> Section:
    # REQ: CON-5 — a data connection and the map setting; coverage is partial.
    if model.privacy_scope is PrivacyScope.ALL_SERVICES:
        needs = N_("Real-time traffic needs a working data connection, and privacy mode off.")
    else:
        needs = N_("Real-time traffic needs a working data connection.")
    items = [
        _fact("traffic.needs", needs),
        _step("traffic.enable", N_("Switch it on in the map view: %(path)s."), path=Text(_MAP_PATH)),
    ]
    if country is None:
        items.append(_no_data("traffic.coverage", place))
    elif country.traffic is TrafficCoverage.NONE:
        items.append(_warning("traffic.coverage", _COVERAGE[country.traffic], country=place))
    else:
        items.append(_fact("traffic.coverage", _COVERAGE[country.traffic], country=place))
    items.append(
        _fact("traffic.partial", N_("Even where it is offered, traffic data is not available on every road."))
    )
    return Section("traffic", Text(N_("Real-time traffic")), tuple(items))
