"""The activation certificate for the insurer, as a PDF (SEC-4), in the owner's language.

fpdf2 writes it: pure Python, no system libraries. English and German use the built-in Helvetica and Courier,
which keep the file small and cover Latin-1 (every field is passed through `_latin1`). Japanese needs a
Unicode font: the IPA Gothic TTF of Debian's `fonts-ipafont-gothic`; where it is not installed the
certificate is printed in English (the numbers carry the meaning). The certificate says what the
verification page can confirm, and where that page is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babel.dates import format_date
from fpdf import FPDF

from carlink import i18n
from carlink.i18n import N_, _
from carlink.security.activations import grouped_code

ISSUER = "carlink"
PACKAGE_NAMES = {"tracking": N_("Vehicle tracking"), "tracking-plus": N_("Vehicle tracking plus")}
# Where Debian puts a TrueType font with Japanese glyphs (fonts-ipafont-gothic); the first found is used.
CJK_FONTS = (
    Path("/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf"),
    Path("/usr/share/fonts/truetype/fonts-japanese-gothic.ttf"),
)
CJK_FAMILY = "IPAGothic"


@dataclass(frozen=True)
class CertificateData:
    vin: str
    model: str
    package: str
    activated_at: dt.datetime
    number: str
    code: str
    verify_url: str


def package_name(package: str, language: str | None = None) -> str:
    """The package's name in `language` (the request's when None); an unknown package keeps its code."""
    name = PACKAGE_NAMES.get(package)
    if name is None:
        return package
    return _(name) if language is None else i18n.translations(language).ugettext(name)


def cjk_font() -> Path | None:
    return next((path for path in CJK_FONTS if path.is_file()), None)


def pdf_language(language: str | None) -> str:
    """The language the certificate is printed in: the owner's, unless no font here can write it."""
    chosen = i18n.supported(language) or i18n.DEFAULT_LANGUAGE
    if chosen == "ja" and cjk_font() is None:
        return i18n.DEFAULT_LANGUAGE
    return chosen


def _latin1(text: str) -> str:
    # A custom car name may hold any character; the built-in font shows what Latin-1 has, the rest as "?".
    return text.encode("latin-1", "replace").decode("latin-1")


def render_pdf(data: CertificateData, language: str | None = None) -> bytes:
    """One A4 page: title, the facts as a table, and how to verify them."""
    language = pdf_language(language)
    catalogue = i18n.translations(language)
    font = cjk_font() if language == "ja" else None

    def say(message: str, **values: Any) -> str:
        text = catalogue.ugettext(message)
        text = text % values if values else text
        return text if font else _latin1(text)

    pdf = FPDF(format="A4")
    if font is not None:
        for style in ("", "B", "I"):
            pdf.add_font(CJK_FAMILY, style, str(font))
    sans = CJK_FAMILY if font else "Helvetica"
    mono = CJK_FAMILY if font else "Courier"
    pdf.set_title(say(N_("Activation certificate %(number)s"), number=data.number))
    pdf.set_author(ISSUER)
    pdf.set_creator(ISSUER)
    pdf.add_page()
    pdf.set_font(sans, "B", 20)
    pdf.cell(0, 12, say(N_("Activation certificate")), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(sans, "", 11)
    pdf.multi_cell(
        0,
        6,
        say(
            N_(
                "%(issuer)s confirms that the vehicle below has a tracking package that is fully active: its "
                "theft sensors report to our security operations centre (SOC), which is staffed around the "
                "clock."
            ),
            issuer=ISSUER,
        ),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(4)
    activated = format_date(data.activated_at.date(), format="long", locale=i18n.BABEL_LOCALES[language])
    rows = (
        (say(N_("Vehicle identification number (VIN)")), data.vin, mono),
        (say(N_("Model")), data.model, sans),
        (say(N_("Package")), package_name(data.package, language), sans),
        (say(N_("Activation date")), activated, mono),
        (say(N_("Certificate number")), data.number, mono),
        (say(N_("Verification code")), grouped_code(data.code), mono),
    )
    for label, value, family in rows:
        pdf.set_font(sans, "", 10)
        pdf.cell(75, 9, label, border="B")
        pdf.set_font(family, "B", 12)
        pdf.cell(0, 9, value if font else _latin1(value), border="B", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font(sans, "", 10)
    pdf.multi_cell(
        0,
        6,
        say(
            N_(
                "Insurers can check this certificate at any time: enter the certificate number and the "
                "verification code at %(url)s. The page confirms whether the package is active and shows its "
                "activation date and the last six characters of the VIN."
            ),
            url=data.verify_url,
        ),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(4)
    pdf.set_font(sans, "I", 9)
    pdf.cell(0, 6, say(N_("Issued by %(issuer)s"), issuer=ISSUER), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
