"""The model catalogue (VEH-1): what each model line and generation can do.

Car and cloud both act on it, so it lives in the shared protocol package: the simulator builds a car from
its profile, the cloud decides from the same profile which commands and measurements to offer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from carlink.protocol.messages import CommandType


class Engine(StrEnum):
    BEV = "BEV"
    PHEV = "PHEV"
    COMBUSTION = "COMBUSTION"


class DataConnection(StrEnum):
    ESIM = "esim"
    INSERTED_SIM = "inserted_sim"
    PHONE_HOTSPOT = "phone_hotspot"


class SymbolPosition(StrEnum):
    TOP_RIGHT = "top_right"
    BOTTOM_LEFT = "bottom_left"


class PrivacyScope(StrEnum):
    REMOTE_ACCESS = "remote_access"  # privacy mode suspends remote access and location
    ALL_SERVICES = "all_services"  # privacy mode suspends every connected service


class InfotainmentMenu(StrEnum):
    """The two menu families of the infotainment unit; roaming and data are switched in different places."""

    PHONE_OPT = "phone_opt"  # PHONE > OPT > PHONE settings
    DEVICE_MANAGER_DATA_CONNECTION = "device_manager_data_connection"  # Device manager > Options > Data conn.
    DEVICE_MANAGER_MOBILE_DATA = "device_manager_mobile_data"  # Settings > Device manager > Mobile data
    AUTOMATIC = "automatic"  # nothing to set: roaming is on by itself


def N_(text: str) -> str:
    """Marks a text the portal shows for its catalogues (carlink.i18n, tools/catalogs.py, which reads this
    file although `protocol/` is otherwise not translated); this package itself needs no Babel."""
    return text


@dataclass(frozen=True)
class MenuPaths:
    """Where one menu family keeps the connection settings, as the car's screen names them.

    The car shows its menus in the language set in the car, so the portal translates these paths (`_(path)`
    where shown) and says that they are the names in the car's language. The connectivity guide and the
    owner's manual both read this table, so they always name the same screens.
    """

    roaming: str
    mobile_data: str
    sim_pin: str
    hotspot: str


# REQ: VEH-1, CON-1, CON-2 — the one table of menu paths; `AUTOMATIC` has none (nothing to set).
MENU_PATHS: dict[InfotainmentMenu, MenuPaths] = {
    InfotainmentMenu.PHONE_OPT: MenuPaths(
        roaming=N_("PHONE > OPT > PHONE settings > Roaming"),
        mobile_data=N_("PHONE > OPT > PHONE settings > Data connection > Data connection"),
        sim_pin=N_("PHONE > OPT > PHONE settings > Phone > SIM card > Store PIN"),
        hotspot=N_("PHONE > OPT > PHONE settings > Data connection"),
    ),
    InfotainmentMenu.DEVICE_MANAGER_DATA_CONNECTION: MenuPaths(
        roaming=N_("Device manager > Options > Data connection > Roaming"),
        mobile_data=N_("Device manager > Options > Data connection > Data connection"),
        sim_pin=N_("Device manager > Options > Phone > SIM card > Store PIN"),
        hotspot=N_("Device manager > Options > Data connection"),
    ),
    InfotainmentMenu.DEVICE_MANAGER_MOBILE_DATA: MenuPaths(
        roaming=N_("Settings > Device manager > Options > Mobile data > Roaming"),
        mobile_data=N_("Settings > Device manager > Options > Mobile data > Mobile data"),
        sim_pin=N_("Settings > Device manager > Options > Phone > SIM card > Store PIN"),
        hotspot=N_("Settings > Device manager > Options > Mobile data"),
    ),
}


CLOUD_COMMANDS = frozenset({CommandType.WAKE, CommandType.REMOTE_ACCESS_RESET})
BASE_COMMANDS = frozenset({CommandType.LOCK, CommandType.UNLOCK, CommandType.HONK_FLASH}) | CLOUD_COMMANDS
CLIMATE_COMMANDS = frozenset({CommandType.CLIMATE_START, CommandType.CLIMATE_STOP})
CHARGE_COMMANDS = frozenset(
    {CommandType.DIRECT_CHARGING_START, CommandType.DIRECT_CHARGING_STOP, CommandType.CHARGE_TARGET}
)
BASE_MEASUREMENTS = frozenset(
    {
        "range",
        "mileage",
        "lock",
        "doors",
        "location",
        "tyres",
        "privacy",
        "remote_access",
        "parking",
        "hotspot",
    }
)


@dataclass(frozen=True)
class Variant:
    code: str
    name: str
    engine: Engine
    body: str = "COUPE"


@dataclass(frozen=True)
class ModelProfile:
    """One model line and generation with its capability profile."""

    key: str
    line: str
    generation: str
    generation_code: str
    years: tuple[int, int | None]
    variants: tuple[Variant, ...]
    data_connections: tuple[DataConnection, ...]
    roaming_menu: InfotainmentMenu
    data_menu: InfotainmentMenu
    pairing_code_needed: bool
    in_car_id_login: bool
    privacy_scope: PrivacyScope
    symbol_position: SymbolPosition
    remote_access_authorisation_required: bool = True
    remote_climate: bool = False
    wmi_descriptor: str = "ZZZ"
    extra_commands: frozenset[CommandType] = field(default_factory=frozenset)
    # (model year, menu): from that model year on, roaming and data are switched in this menu instead of
    # `roaming_menu` / `data_menu` (an updated infotainment unit within one generation).
    newer_menu: tuple[int, InfotainmentMenu] | None = None

    @property
    def roaming_automatic(self) -> bool:
        return self.roaming_menu is InfotainmentMenu.AUTOMATIC

    @property
    def esim_only(self) -> bool:
        return self.data_connections == (DataConnection.ESIM,)

    def menus(self, model_year: int | None) -> tuple[InfotainmentMenu, InfotainmentMenu]:
        """(roaming menu, data menu) of a car of this model year; the base menus when the year is unknown."""
        if self.newer_menu is not None and model_year is not None and model_year >= self.newer_menu[0]:
            return self.newer_menu[1], self.newer_menu[1]
        return self.roaming_menu, self.data_menu

    def menu_paths(self, model_year: int | None) -> tuple[MenuPaths | None, MenuPaths]:
        """(roaming paths, data paths) of a car of this model year: the SIM PIN and the hotspot live with the
        data settings; no roaming paths when roaming switches on by itself."""
        roaming, data = self.menus(model_year)
        return MENU_PATHS.get(roaming), MENU_PATHS[data]

    def variant(self, code: str) -> Variant:
        for variant in self.variants:
            if variant.code == code:
                return variant
        raise KeyError(code)

    def commands(self, engine: Engine) -> frozenset[CommandType]:
        commands = set(BASE_COMMANDS) | self.extra_commands
        if self.remote_climate or engine is not Engine.COMBUSTION:
            commands |= CLIMATE_COMMANDS
        if engine is not Engine.COMBUSTION:
            commands |= CHARGE_COMMANDS
        return frozenset(commands)

    def remote_services(self, engine: Engine) -> list[str]:
        """The commands a person can send (RMT-1), by name."""
        return sorted(c.value for c in self.commands(engine) - CLOUD_COMMANDS)

    def measurements(self, engine: Engine) -> frozenset[str]:
        keys = set(BASE_MEASUREMENTS)
        if engine is not Engine.BEV:
            keys.add("fuel")
        if engine is not Engine.COMBUSTION:
            keys |= {"battery", "charging"}
        if CommandType.CLIMATE_START in self.commands(engine):
            keys.add("climate")
        return frozenset(keys)


_ALL_CONNECTIONS = (DataConnection.ESIM, DataConnection.INSERTED_SIM, DataConnection.PHONE_HOTSPOT)
_OLD_PCM = {
    "data_connections": _ALL_CONNECTIONS,
    "roaming_menu": InfotainmentMenu.PHONE_OPT,
    "data_menu": InfotainmentMenu.PHONE_OPT,
    "pairing_code_needed": True,
    "in_car_id_login": False,
    "privacy_scope": PrivacyScope.REMOTE_ACCESS,
    "symbol_position": SymbolPosition.BOTTOM_LEFT,
}
_NEW_PCM = {
    "data_connections": _ALL_CONNECTIONS,
    "roaming_menu": InfotainmentMenu.DEVICE_MANAGER_MOBILE_DATA,
    "data_menu": InfotainmentMenu.DEVICE_MANAGER_MOBILE_DATA,
    "pairing_code_needed": True,
    "in_car_id_login": False,
    "privacy_scope": PrivacyScope.REMOTE_ACCESS,
    "symbol_position": SymbolPosition.TOP_RIGHT,
}

CATALOGUE: tuple[ModelProfile, ...] = (
    ModelProfile(
        key="911-7",
        line="911",
        generation=N_("7th generation"),
        generation_code="991",
        years=(2012, 2018),
        variants=(
            Variant("991110", "911 Carrera", Engine.COMBUSTION),
            Variant("991410", "911 Carrera 4S", Engine.COMBUSTION),
        ),
        wmi_descriptor="ZZZ99",
        **_OLD_PCM,  # type: ignore[arg-type]
    ),
    ModelProfile(
        key="911-8",
        line="911",
        generation=N_("8th generation"),
        generation_code="992",
        years=(2019, None),
        variants=(
            Variant("992110", "911 Carrera", Engine.COMBUSTION),
            Variant("992810", "911 Turbo S", Engine.COMBUSTION),
        ),
        wmi_descriptor="ZZZ99",
        **_NEW_PCM,  # type: ignore[arg-type]
    ),
    ModelProfile(
        key="718",
        line="718",
        generation="718",
        generation_code="982",
        years=(2016, None),
        variants=(
            Variant("982120", "718 Cayman", Engine.COMBUSTION),
            Variant("982320", "718 Boxster S", Engine.COMBUSTION, body="ROADSTER"),
        ),
        wmi_descriptor="ZZZ98",
        **_OLD_PCM,  # type: ignore[arg-type]
    ),
    ModelProfile(
        key="macan-1",
        line="Macan",
        generation=N_("Macan (until 2018)"),
        generation_code="95B",
        years=(2014, 2018),
        variants=(Variant("95BAA1", "Macan", Engine.COMBUSTION, body="SUV"),),
        wmi_descriptor="ZZZ95",
        **_OLD_PCM,  # type: ignore[arg-type]
    ),
    ModelProfile(
        key="macan-2",
        line="Macan",
        generation=N_("Macan (from 2018)"),
        generation_code="95B2",
        years=(2018, None),
        variants=(Variant("95BBA1", "Macan S", Engine.COMBUSTION, body="SUV"),),
        wmi_descriptor="ZZZ95",
        **_NEW_PCM,  # type: ignore[arg-type]
    ),
    ModelProfile(
        key="cayenne-2",
        line="Cayenne",
        generation=N_("2nd generation (until 2017)"),
        generation_code="92A",
        years=(2010, 2017),
        variants=(
            Variant("92AAA1", "Cayenne", Engine.COMBUSTION, body="SUV"),
            Variant("92AAE1", "Cayenne S E-Hybrid", Engine.PHEV, body="SUV"),
        ),
        wmi_descriptor="ZZZ92",
        **_OLD_PCM,  # type: ignore[arg-type]
    ),
    ModelProfile(
        key="cayenne-3",
        line="Cayenne",
        generation=N_("3rd generation (from 2017)"),
        generation_code="9YA",
        years=(2017, None),
        variants=(
            Variant("9YAAA1", "Cayenne", Engine.COMBUSTION, body="SUV"),
            Variant("9YAAE1", "Cayenne E-Hybrid", Engine.PHEV, body="SUV"),
        ),
        wmi_descriptor="ZZZ9Y",
        remote_climate=True,
        **_NEW_PCM,  # type: ignore[arg-type]
    ),
    ModelProfile(
        key="panamera-2",
        line="Panamera",
        generation=N_("2nd generation (from 2017)"),
        generation_code="971",
        years=(2017, None),
        variants=(
            Variant("971AA1", "Panamera 4", Engine.COMBUSTION, body="SEDAN"),
            Variant("971AE1", "Panamera 4 E-Hybrid", Engine.PHEV, body="SEDAN"),
        ),
        data_connections=_ALL_CONNECTIONS,
        # 2017-2019 cars use Device manager > Options > Data connection; from 2020 the Mobile data menu.
        roaming_menu=InfotainmentMenu.DEVICE_MANAGER_DATA_CONNECTION,
        data_menu=InfotainmentMenu.DEVICE_MANAGER_DATA_CONNECTION,
        newer_menu=(2020, InfotainmentMenu.DEVICE_MANAGER_MOBILE_DATA),
        pairing_code_needed=True,
        in_car_id_login=False,
        privacy_scope=PrivacyScope.REMOTE_ACCESS,
        symbol_position=SymbolPosition.TOP_RIGHT,
        remote_climate=True,
        wmi_descriptor="ZZZ97",
    ),
    ModelProfile(
        key="taycan-1",
        line="Taycan",
        generation=N_("1st generation"),
        generation_code="J1",
        years=(2019, None),
        variants=(
            Variant("Y1ADB1", "Taycan 4S", Engine.BEV, body="SEDAN"),
            Variant("Y1AFH1", "Taycan Turbo Cross Turismo", Engine.BEV, body="WAGON"),
        ),
        data_connections=(DataConnection.ESIM,),
        roaming_menu=InfotainmentMenu.AUTOMATIC,
        data_menu=InfotainmentMenu.DEVICE_MANAGER_MOBILE_DATA,
        pairing_code_needed=False,
        in_car_id_login=True,
        privacy_scope=PrivacyScope.ALL_SERVICES,
        symbol_position=SymbolPosition.TOP_RIGHT,
        remote_climate=True,
        wmi_descriptor="ZZZY1",
    ),
)

_BY_KEY = {profile.key: profile for profile in CATALOGUE}


def profile(key: str) -> ModelProfile:
    return _BY_KEY[key]


def find_variant(code: str) -> tuple[ModelProfile, Variant]:
    for model in CATALOGUE:
        for variant in model.variants:
            if variant.code == code:
                return model, variant
    raise KeyError(code)
