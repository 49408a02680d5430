"""The portal by keyboard alone, in Debian's chromium (issue 8, WCAG 2.1.1, 2.4.3, 2.4.7, 1.4.11): Tab reaches
every control of the vehicle page, the connectivity page and the store in the order of the page, each one
shows the focus ring while it has the focus, and signing in needs no mouse."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.async_api import Page

from carlink.demo import world
from tests.conftest import STACKS
from tests.e2e.conftest import OpenPage
from tests.support.stack import TAYCAN, Stack

pytestmark = pytest.mark.e2e

# The focus ring of carlink.css: a dark outline (--focus) inside a white halo (--focus-halo).
RING = "rgb(23, 35, 45)"
HALO = "rgb(255, 255, 255)"

# Numbers the controls Tab should reach, in the order of the page: what the browser can focus, is shown and
# is not disabled; of a group of radio buttons only the chosen one (or the first), as browsers do.
_NUMBER_CONTROLS = """() => {
  const selector = 'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]';
  const controls = [...document.querySelectorAll(selector)].filter(e => {
    if (e.tabIndex < 0 || e.disabled || e.closest('[inert]')) return false;
    if (!e.checkVisibility({visibilityProperty: true})) return false;
    if (e.type === 'radio' && e.name) {
      const group = [...(e.form || document).querySelectorAll(`input[type=radio][name="${e.name}"]`)];
      const chosen = group.find(r => r.checked) || group[0];
      if (e !== chosen) return false;
    }
    return true;
  });
  controls.forEach((e, i) => { e.dataset.tabOrder = String(i); });
  return controls.length;
}"""

_FOCUSED = """() => {
  const e = document.activeElement;
  const style = getComputedStyle(e);
  return {
    order: e.dataset.tabOrder ?? null,
    name: e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + ' '
      + (e.textContent || e.name || '').trim().slice(0, 30),
    outline: [style.outlineStyle, parseFloat(style.outlineWidth), style.outlineColor],
    halo: style.boxShadow,
    focusVisible: e.matches(':focus-visible'),
  };
}"""


async def sign_in_by_keyboard(page: Page, email: str) -> None:
    await page.goto("/signin")
    focused = "() => document.activeElement.id || document.activeElement.type"
    assert await page.evaluate(focused) == "email"  # the address field has the focus when the page opens
    await page.keyboard.type(email)
    await page.keyboard.press("Tab")
    assert await page.evaluate(focused) == "password"
    await page.keyboard.type(world.PASSWORD)
    await page.keyboard.press("Tab")
    assert await page.evaluate(focused) == "submit"
    async with page.expect_navigation():
        await page.keyboard.press("Enter")  # on the Sign in button


async def tab_through(page: Page) -> list[str]:
    """Tabs from the top of the page to its last control; answers what went wrong."""
    await page.wait_for_load_state("networkidle")  # htmx has filled in the live parts
    count: int = await page.evaluate(_NUMBER_CONTROLS)
    assert count > 0
    await page.evaluate("() => document.activeElement && document.activeElement.blur()")
    wrong: list[str] = []
    for expected in range(count):
        await page.keyboard.press("Tab")
        focused: dict[str, Any] = await page.evaluate(_FOCUSED)
        where = f"Tab {expected + 1} of {count}: {focused['name']}"
        if focused["order"] != str(expected):
            wrong.append(f"{where}: reached control {focused['order']}, not {expected}")
            break  # the rest of the order is off by one as well
        style, width, colour = focused["outline"]
        if not focused["focusVisible"] or style == "none" or width < 2 or colour != RING:
            wrong.append(f"{where}: no visible focus ring ({style} {width}px {colour})")
        elif HALO not in focused["halo"]:
            wrong.append(f"{where}: the ring has no white halo ({focused['halo']})")
    return wrong


@pytest.mark.parametrize("stack", [STACKS[0]], indirect=True)
async def test_sign_in_works_with_the_keyboard_alone(stack: Stack, open_page: OpenPage) -> None:
    page = await open_page()
    await sign_in_by_keyboard(page, world.OWNER)
    assert urlparse(page.url).path == "/vehicles"
    await page.context.close()


@pytest.mark.parametrize("stack", [STACKS[0]], indirect=True)
async def test_tab_reaches_every_control_in_order_with_a_visible_focus_ring(
    stack: Stack, open_page: OpenPage
) -> None:
    page = await open_page()
    await sign_in_by_keyboard(page, world.OWNER)
    wrong: list[str] = []
    for address in (f"/vehicles/{TAYCAN}", f"/vehicles/{TAYCAN}/connectivity", f"/vehicles/{TAYCAN}/store"):
        await page.goto(address)
        wrong.extend(f"{address}: {problem}" for problem in await tab_through(page))
    await page.context.close()
    assert not wrong, "\n".join(wrong)
