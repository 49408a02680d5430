"""The activation certificate for the insurer, as a PDF (SEC-4).

fpdf2 writes it: pure Python, no system libraries, and its built-in Helvetica keeps the file small. The words
are English (the insurer's paper; the numbers carry the meaning); every field is Latin-1 text, which the
built-in fonts cover. The certificate says what the verification page can confirm, and where that page is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fpdf import FPDF

from carlink.security.activations import grouped_code

ISSUER = "carlink"
PACKAGE_NAMES = {"tracking": "Vehicle tracking", "tracking-plus": "Vehicle tracking plus"}


@dataclass(frozen=True)
class CertificateData:
    vin: str
    model: str
    package: str
    activated_at: dt.datetime
    number: str
    code: str
    verify_url: str


def package_name(package: str) -> str:
    return PACKAGE_NAMES.get(package, package)


def _latin1(text: str) -> str:
    # A custom car name may hold any character; the built-in font shows what Latin-1 has, the rest as "?".
    return text.encode("latin-1", "replace").decode("latin-1")


def render_pdf(data: CertificateData) -> bytes:
    """One A4 page: title, the facts as a table, and how to verify them."""
    pdf = FPDF(format="A4")
    pdf.set_title(f"Activation certificate {data.number}")
    pdf.set_author(ISSUER)
    pdf.set_creator(ISSUER)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 20)
    pdf.cell(0, 12, "Activation certificate", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    pdf.multi_cell(
        0,
        6,
        f"{ISSUER} confirms that the vehicle below has a tracking package that is fully active: its theft "
        "sensors report to our security operations centre (SOC), which is staffed around the clock.",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(4)
    rows = (
        ("Vehicle identification number (VIN)", data.vin),
        ("Model", data.model),
        ("Package", package_name(data.package)),
        ("Activation date", data.activated_at.strftime("%d %B %Y")),
        ("Certificate number", data.number),
        ("Verification code", grouped_code(data.code)),
    )
    for label, value in rows:
        pdf.set_font("Helvetica", "", 10)
        pdf.cell(75, 9, label, border="B")
        pdf.set_font("Helvetica" if label in ("Model", "Package") else "Courier", "B", 12)
        pdf.cell(0, 9, _latin1(value), border="B", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font("Helvetica", "", 10)
    pdf.multi_cell(
        0,
        6,
        "Insurers can check this certificate at any time: enter the certificate number and the "
        f"verification code at {data.verify_url}. The page confirms whether the package is active and "
        "shows its activation date and the last six characters of the VIN.",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(4)
    pdf.set_font("Helvetica", "I", 9)
    pdf.cell(0, 6, f"Issued by {ISSUER}", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
