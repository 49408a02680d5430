"""The gettext catalogues of the portal (carlink.i18n): extract, update, compile, check.

    python tools/catalogs.py update [DOMAIN...]   # texts from the code into the .po files (make catalogs)
    python tools/catalogs.py compile   # .po -> .mo (make install)
    python tools/catalogs.py check     # exit 1 when a text has no translation (the unit test does the same)

Texts are found in the templates (``{% trans %}``, ``_()``) and in the Python code (``_``, ``N_``,
``ngettext`` and the message of every `carlink.errors.CarlinkError` class). Each source file belongs to the
domain `carlink.i18n.domain_of` names; its texts go to ``locale/<language>/LC_MESSAGES/<domain>.po``.
"""

from __future__ import annotations

import ast
import datetime
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po, write_po

from carlink import i18n
from carlink.errors import CarlinkError

SOURCE = Path(i18n.__file__).parent
TEMPLATE_DIR = SOURCE / "web" / "templates"
JINJA_OPTIONS = {"extensions": "", "trimmed": "true"}
# Marks a call whose text stays English on purpose (the maker's wire contract): `# untranslated: why`.
UNTRANSLATED = "# untranslated:"
CREATED = datetime.datetime(2026, 11, 26, tzinfo=datetime.UTC)
GETTEXT_KEYWORDS: dict[str, tuple[int, ...] | None] = {
    "_": None,
    "N_": None,
    "gettext": None,
    "ngettext": (1, 2),
}


def _error_classes(root: type[CarlinkError] = CarlinkError) -> Iterator[type[CarlinkError]]:
    yield root
    for sub in root.__subclasses__():
        yield from _error_classes(sub)


def python_keywords() -> dict[str, tuple[int, ...] | None]:
    """gettext's own names plus every error class, whose message argument is a text to translate."""
    _import_everything()
    keywords = dict(GETTEXT_KEYWORDS)
    for cls in _error_classes():
        keywords[cls.__name__] = (cls.message_position,)
    return keywords


def _import_everything() -> None:
    """Error classes are defined all over the package: import it all so that each is known."""
    import importlib
    import pkgutil

    import carlink

    for module in pkgutil.walk_packages(carlink.__path__, "carlink."):
        if ".migrations" not in module.name:
            importlib.import_module(module.name)


def translated_files() -> Iterator[Path]:
    for path in sorted(SOURCE.rglob("*")):
        relative = path.relative_to(SOURCE).as_posix()
        if relative.startswith(i18n.NOT_TRANSLATED) and relative not in i18n.TRANSLATED_DATA:
            continue
        if path.suffix == ".py" or (path.suffix == ".html" and path.is_relative_to(TEMPLATE_DIR)):
            yield path


@dataclass(frozen=True)
class Text:
    msgid: str | tuple[str, str]
    location: tuple[str, int]


def texts_by_domain() -> dict[str, list[Text]]:
    keywords = python_keywords()
    found: dict[str, list[Text]] = {domain: [] for domain in i18n.DOMAINS}
    for path in translated_files():
        relative = path.relative_to(SOURCE).as_posix()
        if path.suffix == ".py":
            extracted = extract_from_file("python", str(path), keywords=keywords)
        else:
            extracted = extract_from_file(
                "jinja2.ext.babel_extract", str(path), keywords=GETTEXT_KEYWORDS, options=JINJA_OPTIONS
            )
        for lineno, message, _comments, _context in extracted:
            if not message or (isinstance(message, tuple) and not all(message)):
                continue
            msgid = message if isinstance(message, str) else (message[0], message[1])
            found[i18n.domain_of(relative)].append(Text(msgid, (relative, lineno)))
    return found


def template_catalog(texts: list[Text]) -> Catalog:
    # A fixed date and header: the files change only when their texts do.
    catalog = Catalog(
        project="carlink",
        version="1",
        copyright_holder="the carlink authors",
        msgid_bugs_address="https://example.com/carlink/issues",
        creation_date=CREATED,
        fuzzy=False,
    )
    for text in texts:
        first = text.msgid if isinstance(text.msgid, str) else text.msgid[0]
        flags = ("python-format",) if "%(" in first or "%s" in first else ()
        catalog.add(text.msgid, locations=[text.location], flags=flags)
    return catalog


def po_path(language: str, domain: str) -> Path:
    return i18n.LOCALE_DIR / language / "LC_MESSAGES" / f"{domain}.po"


def read(language: str, domain: str) -> Catalog:
    path = po_path(language, domain)
    if not path.exists():
        return Catalog(
            locale=language,
            domain=domain,
            project="carlink",
            version="1",
            copyright_holder="the carlink authors",
            creation_date=CREATED,
            fuzzy=False,
        )
    with path.open("rb") as source:
        return read_po(source, locale=language, domain=domain)


def update(domains: list[str]) -> None:
    for domain, texts in texts_by_domain().items():
        if domains and domain not in domains:
            continue
        template = template_catalog(texts)
        for language in i18n.LANGUAGES:
            if language == i18n.DEFAULT_LANGUAGE:
                continue
            catalog = read(language, domain)
            catalog.update(template, no_fuzzy_matching=True)
            path = po_path(language, domain)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as out:
                write_po(out, catalog, width=110, no_location=True, omit_header=False, ignore_obsolete=True)


def compile_all() -> None:
    for po in sorted(i18n.LOCALE_DIR.glob("*/LC_MESSAGES/*.po")):
        po.with_suffix(".mo").write_bytes(i18n.compile_po(po))


def problems() -> list[str]:
    """Every text without a translation, and every translation whose placeholders differ from the text."""
    found: list[str] = []
    for domain, texts in texts_by_domain().items():
        for language in i18n.LANGUAGES:
            if language == i18n.DEFAULT_LANGUAGE:
                continue
            catalog = read(language, domain)
            for text in texts:
                key = text.msgid if isinstance(text.msgid, str) else text.msgid[0]
                message = catalog.get(key)
                where = f"{text.location[0]}:{text.location[1]}"
                strings = message.string if message else None
                missing = not all(strings) if isinstance(strings, (list, tuple)) else not strings
                if message is None or missing or message.fuzzy:
                    found.append(f"{language}/{domain}.po has no translation of {key!r} ({where})")
            for message, errors in catalog.check():
                for error in errors:
                    found.append(f"{language}/{domain}.po: {message.id!r}: {error}")
    return found + unmarked_messages()


def unmarked_messages() -> list[str]:
    """Texts given to `_` or an error class as an f-string or a formatted string: no catalogue holds them."""
    keywords = python_keywords()
    found = []
    for path in translated_files():
        if path.suffix == ".py":
            for line, name in formatted_calls(path.read_text(), keywords):
                found.append(f"{path.relative_to(SOURCE)}:{line}: {name}() is given a formatted string")
    return found


def _unmarked(argument: ast.expr) -> bool:
    """An f-string, ``"…" % x``, or a call other than `N_`/`_` (``str(exc)``: a text from elsewhere)."""
    if isinstance(argument, ast.JoinedStr):
        return True
    if isinstance(argument, ast.BinOp) and isinstance(argument.left, ast.Constant):
        return True
    if isinstance(argument, ast.Call):
        # A marked text, or a lookup in a map of marked texts (LABELS.get(key, N_("…"))), is fine.
        callee = (
            argument.func.id if isinstance(argument.func, ast.Name) else getattr(argument.func, "attr", None)
        )
        return callee not in ("N_", "_", "get")
    return False


def formatted_calls(source: str, keywords: dict[str, tuple[int, ...] | None]) -> list[tuple[int, str]]:
    """(line, name) of each call of a keyword whose text argument no catalogue can hold (`_unmarked`)."""
    found = []
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        if any(UNTRANSLATED in line for line in lines[node.lineno - 1 : (node.end_lineno or node.lineno)]):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
        if name not in keywords:
            continue
        for position in keywords[name] or (1,):
            if len(node.args) < position:
                continue
            argument = node.args[position - 1]
            if _unmarked(argument):
                found.append((node.lineno, name))
    return found


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else ""
    if command == "update":
        update(argv[2:])
    elif command == "compile":
        compile_all()
    elif command == "check":
        listed = problems()
        print("\n".join(listed) or "every text is translated")
        return 1 if listed else 0
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
