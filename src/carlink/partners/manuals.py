"""Digital owner's manuals (PAR-4): for model year 2018 onwards, written from the model catalogue
(carlink.protocol.catalogue), so each model's manual says what that model does and no section is written by
hand per model. Older cars keep their printed manual."""

from __future__ import annotations

from dataclasses import dataclass, field

from babel.lists import format_list

from carlink import i18n
from carlink.i18n import N_, _
from carlink.protocol.catalogue import (
    CATALOGUE,
    DataConnection,
    Engine,
    ModelProfile,
    PrivacyScope,
    SymbolPosition,
    Variant,
    profile,
)
from carlink.protocol.messages import CommandType

FIRST_DIGITAL_YEAR = 2018

_CONNECTIONS = {
    DataConnection.ESIM: N_("A built-in eSIM: the car is online by itself, no card to insert."),
    DataConnection.INSERTED_SIM: N_("Your own SIM card in the card slot of the infotainment unit."),
    DataConnection.PHONE_HOTSPOT: N_(
        "Your phone's hotspot: connect the car to it like any other WiFi network."
    ),
}
_SYMBOL = {
    SymbolPosition.TOP_RIGHT: N_("The connection symbol is at the top right of the infotainment screen."),
    SymbolPosition.BOTTOM_LEFT: N_("The connection symbol is at the bottom left of the infotainment screen."),
}
_PRIVACY = {
    PrivacyScope.REMOTE_ACCESS: N_(
        "Privacy mode pauses remote access and the car's location: nobody can send the car commands or see "
        "where it is. Other connected services, such as navigation with live traffic, keep working."
    ),
    PrivacyScope.ALL_SERVICES: N_(
        "Privacy mode pauses every connected service: the car sends nothing to carlink and accepts no "
        "remote commands until you switch privacy mode off again."
    ),
}
_COMMANDS = {
    CommandType.LOCK: N_("Lock the car"),
    CommandType.UNLOCK: N_("Unlock the car (asks for your security PIN)"),
    CommandType.HONK_FLASH: N_("Honk and flash, to find the car in a car park"),
    CommandType.CLIMATE_START: N_("Start climate control before you set off"),
    CommandType.CLIMATE_STOP: N_("Stop climate control"),
    CommandType.DIRECT_CHARGING_START: N_("Start charging at once, ignoring the charging timer"),
    CommandType.DIRECT_CHARGING_STOP: N_("Stop direct charging"),
    CommandType.CHARGE_TARGET: N_("Set the charge level the battery charges to"),
}
_MEASUREMENTS = {
    "lock": N_("whether the car is locked"),
    "doors": N_("doors, windows and lids"),
    "battery": N_("battery charge"),
    "fuel": N_("fuel level"),
    "range": N_("remaining range"),
    "charging": N_("charging state"),
    "climate": N_("climate control"),
    "mileage": N_("mileage"),
    "tyres": N_("tyre pressures"),
    "parking": N_("parking position"),
    "location": N_("the last location"),
    "privacy": N_("privacy mode"),
    "remote_access": N_("remote access authorisation"),
    "hotspot": N_("the in-car WiFi hotspot and its data use"),
}
_ENGINES = {
    Engine.BEV: N_("electric"),
    Engine.PHEV: N_("plug-in hybrid"),
    Engine.COMBUSTION: N_("petrol"),
}


@dataclass(frozen=True)
class ManualSection:
    anchor: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Manual:
    model: ModelProfile
    title: str
    years: str
    sections: list[ManualSection]


def has_digital_manual(model_year: int) -> bool:
    """REQ: PAR-4 — digital from model year 2018; older cars keep the printed manual."""
    return model_year >= FIRST_DIGITAL_YEAR


def digital_years(model: ModelProfile) -> tuple[int, int | None] | None:
    """The model years of this model that have a digital manual; None when it has none."""
    first, last = model.years
    if last is not None and last < FIRST_DIGITAL_YEAR:
        return None
    return max(first, FIRST_DIGITAL_YEAR), last


def models_with_manual() -> list[ModelProfile]:
    return [model for model in CATALOGUE if digital_years(model) is not None]


def manual_for(model_key: str, variant_code: str | None = None, model_year: int | None = None) -> Manual:
    """The manual of one car (its variant and year), or of a whole model (every variant) without them, in
    the current request's language."""
    model = profile(model_key)
    variants = [model.variant(variant_code)] if variant_code else list(model.variants)
    years = digital_years(model)
    if model_year is not None:
        year_text = str(model_year)
    elif years is not None:
        year_text = f"{years[0]}–{years[1]}" if years[1] else _("from %(year)s", year=years[0])
    else:
        year_text = ""
    title = variants[0].name if variant_code else f"{model.line} {_(model.generation)}"
    return Manual(model, title, year_text, _sections(model, variants, model_year))


def _sections(model: ModelProfile, variants: list[Variant], model_year: int | None) -> list[ManualSection]:
    return [
        _about(model, variants),
        _data_connection(model),
        *_roaming(model, model_year),
        _symbol(model),
        _sign_in(model),
        _privacy(model),
        *_remote(model, variants),
    ]


def _about(model: ModelProfile, variants: list[Variant]) -> ManualSection:
    engines = sorted({variant.engine.value for variant in variants})
    return ManualSection(
        "about",
        _("About this manual"),
        [
            _(
                "This manual covers the connected services of the %(model)s (%(code)s). It is made from the "
                "same model catalogue carlink uses to decide what your car can do, so it always matches the "
                "portal and the app.",
                model=f"{model.line} {_(model.generation)}",
                code=model.generation_code,
            ),
            _(
                "The printed manual in the glove box covers driving, maintenance and safety; this one covers "
                "carlink."
            ),
        ],
        [f"{variant.name} ({_(_ENGINES[variant.engine])})" for variant in variants]
        if len(variants) > 1 or len(engines) > 1
        else [],
    )


def _data_connection(model: ModelProfile) -> ManualSection:
    intro = (
        _("Your car goes online in this way:")
        if len(model.data_connections) == 1
        else _("Your car can go online in any of these ways; it picks the first that works:")
    )
    return ManualSection(
        "data-connection",
        _("Getting your car online"),
        [intro],
        [_(_CONNECTIONS[connection]) for connection in model.data_connections],
    )


def _roaming(model: ModelProfile, model_year: int | None) -> list[ManualSection]:
    """Where roaming and data are switched, with the paths of the catalogue's one table (the connectivity
    guide names the same ones). A model's manual whose years span a menu change gets a section per menu."""
    if model_year is not None:
        return [
            ManualSection("roaming", _("Roaming and mobile data"), _roaming_paragraphs(model, model_year))
        ]
    first, last = digital_years(model) or model.years
    change = model.newer_menu[0] if model.newer_menu else None
    if change is None or change <= first or (last is not None and change > last):
        return [ManualSection("roaming", _("Roaming and mobile data"), _roaming_paragraphs(model, first))]
    return [
        ManualSection(
            "roaming",
            _("Roaming and mobile data (until %(year)s)", year=change - 1),
            _roaming_paragraphs(model, change - 1),
        ),
        ManualSection(
            f"roaming-{change}",
            _("Roaming and mobile data (from %(year)s)", year=change),
            _roaming_paragraphs(model, change),
        ),
    ]


def _roaming_paragraphs(model: ModelProfile, model_year: int | None) -> list[str]:
    roaming, data = model.menu_paths(model_year)
    paragraphs = []
    if roaming is None:
        paragraphs.append(_("Roaming abroad needs no setting: the car switches it on by itself."))
    else:
        paragraphs.append(
            _(
                "To use mobile data abroad, switch on data roaming in %(menu)s. Roaming is off when the car "
                "leaves the factory.",
                menu=_(roaming.roaming),
            )
        )
    paragraphs.append(
        _("Mobile data as a whole is switched on and off in %(menu)s.", menu=_(data.mobile_data))
    )
    # The car shows its menus in the language set in the car; the paths are translated to match.
    paragraphs.append(
        _(
            "The menu names are given in the language of this manual; the car shows them in the language set "
            "in the car, so look for the names in your car's language."
        )
    )
    return paragraphs


def _symbol(model: ModelProfile) -> ManualSection:
    return ManualSection(
        "connection-symbol",
        _("The connection symbol"),
        [
            _(_SYMBOL[model.symbol_position])
            + " "
            + _(
                "It shows the network the car uses (LTE, 3G, EDGE or WiFi); crossed out, the car is offline "
                "and remote services wait until it is back online."
            )
        ],
    )


def _sign_in(model: ModelProfile) -> ManualSection:
    if model.in_car_id_login:
        paragraphs = [
            _(
                "Sign in to the car with your carlink ID: in the car, open the user menu, choose Sign in, "
                "and confirm on your phone or type your email address and password."
            ),
            _("No pairing code is needed; each driver signs in with their own ID."),
        ]
    else:
        paragraphs = [
            _(
                "Pair the car with your carlink ID once: the portal shows your personal 8-digit pairing code "
                "on the vehicle's page; type it into the car under the connected services menu."
            ),
            _("Each user of the car has their own pairing code."),
        ]
    if model.remote_access_authorisation_required:
        paragraphs.append(
            _(
                "Remote services need one more step in the car: authorise remote access in the connected "
                "services menu. The main user's security PIN protects unlocking."
            )
        )
    return ManualSection("sign-in", _("Your carlink ID in the car"), paragraphs)


def _privacy(model: ModelProfile) -> ManualSection:
    return ManualSection(
        "privacy",
        _("Privacy mode"),
        [
            _(_PRIVACY[model.privacy_scope]),
            _("Switch privacy mode on and off in the car; the portal shows when it is on."),
        ],
    )


def _remote(model: ModelProfile, variants: list[Variant]) -> list[ManualSection]:
    sections = []
    engines = list(dict.fromkeys(variant.engine for variant in variants))
    for engine in engines:
        several = len(engines) > 1
        kind = _(_ENGINES[engine])
        commands = [_(_COMMANDS[CommandType(name)]) for name in model.remote_services(engine)]
        measurements = sorted(
            _(_MEASUREMENTS[key]) if key in _MEASUREMENTS else key for key in model.measurements(engine)
        )
        sections.append(
            ManualSection(
                f"remote-{engine.value.lower()}",
                _("Remote services (%(kind)s cars)", kind=kind) if several else _("Remote services"),
                [_("From the portal or the app you can:")],
                sorted(commands),
            )
        )
        sections.append(
            ManualSection(
                f"reports-{engine.value.lower()}",
                _("What the car reports (%(kind)s cars)", kind=kind)
                if several
                else _("What the car reports"),
                [
                    _(
                        "The car reports these to carlink, so the portal and the app can show them: "
                        "%(measurements)s.",
                        measurements=format_list(measurements, locale=i18n.babel_locale()),
                    )
                ],
            )
        )
    return sections
