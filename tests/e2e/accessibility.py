"""axe-core (from npm, package.json) run in the page by the browser tests: no serious or critical violation of
WCAG 2.1 A/AA on any page, and no page wider than a phone's screen."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, Page, ViewportSize

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING = ("serious", "critical")
PHONE: ViewportSize = {"width": 375, "height": 740}

_RUN = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 4).map(
      n => n.target.join(" ") + " :: " + (n.failureSummary || "").split("\\n")[1])
  }));
}"""


@cache
def _axe_source() -> str:
    if not AXE.exists():
        raise RuntimeError(f"{AXE} is missing: run `make browser` (npm ci) first")
    return AXE.read_text()


async def violations(page: Page) -> list[dict[str, Any]]:
    """The serious and critical violations on the page as it is now."""
    # Evaluated, not added as a <script>: the portal's Content-Security-Policy must not have to allow it.
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(_axe_source())
    found: list[dict[str, Any]] = await page.evaluate(_RUN, TAGS)
    return [v for v in found if v["impact"] in BLOCKING]


# Every Content-Security-Policy violation in the browser is reported to the test (issue 9: a strict policy
# that the pages keep). The listener is installed before any page script runs, and is not itself subject
# to the page's policy.
_CSP_LISTENER = """document.addEventListener("securitypolicyviolation", (e) => window.carlinkCspViolation(
  `${document.location.pathname}: ${e.effectiveDirective} blocked ${e.blockedURI || "inline"}` +
  ` (${e.sourceFile || "page"}:${e.lineNumber})`));"""


async def watch_csp(context: BrowserContext, blocked: list[str]) -> None:
    """Collects the context's CSP violations into `blocked`."""

    def report(violation: str) -> None:
        blocked.append(violation)

    await context.expose_function("carlinkCspViolation", report)
    await context.add_init_script(_CSP_LISTENER)


def describe(url: str, found: list[dict[str, Any]]) -> str:
    lines = [f"{url}:"]
    for violation in found:
        lines.append(f"  [{violation['impact']}] {violation['id']}: {violation['help']}")
        lines.extend(f"      {node}" for node in violation["nodes"])
    return "\n".join(lines)


async def assert_accessible(page: Page) -> None:
    found = await violations(page)
    assert not found, describe(page.url, found)


_TOO_WIDE = """() => {
  const limit = window.innerWidth + 1;
  const name = e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") +
    (e.classList.length ? "." + [...e.classList].join(".") : "");
  const clipped = e => {
    // Approximate: an absolutely placed element escapes scroll boxes that are not positioned.
    if (e.nodeType === 1 && ["absolute", "fixed"].includes(getComputedStyle(e).position)) return false;
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== "visible") return true;
    }
    return false;
  };
  // The outermost elements that reach past the window's right edge and are not inside a scroll box.
  const found = [...document.body.querySelectorAll("*")].filter(e =>
    e.getBoundingClientRect().right > limit && !clipped(e)
    && !(e.parentElement.getBoundingClientRect().right > limit && !clipped(e.parentElement)));
  const names = found.slice(0, 5).map(e => name(e.parentElement) + " > " + name(e));
  // Text that runs past its box (a long word, a number) has no element of its own.
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  for (let node = walker.nextNode(); node && names.length < 5; node = walker.nextNode()) {
    range.selectNodeContents(node);
    if (range.getBoundingClientRect().right > limit && !clipped(node)) {
      names.push("text '" + node.textContent.trim().slice(0, 40) + "' in " + name(node.parentElement));
    }
  }
  const wider = Math.max(0, document.documentElement.scrollWidth - window.innerWidth);
  return {wider: wider, found: names};
}"""


async def overflow(page: Page) -> tuple[int, list[str]]:
    """How many CSS pixels the page is wider than the window (0: nothing to scroll sideways), and the
    outermost elements that stick out."""
    result: dict[str, Any] = await page.evaluate(_TOO_WIDE)
    return int(result["wider"]), list(result["found"])
