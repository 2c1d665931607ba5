"""Playwright driving Debian's Chromium against the live test server."""
import os
import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser():
    executable = _chromium()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; scripts/test installs it with apt-get")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls
    # are still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.dialogs = []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    yield pg
    context.close()


@pytest.fixture
def login(live_server):
    def do(page, username, password):
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill('input[name="username"]', username)
        page.fill('input[name="password"]', password)
        page.click('button[type="submit"]')
        page.wait_for_load_state()
    return do


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


# --- steps shared by the studio walks -----------------------------------------------------

def mark_page(page) -> None:
    """Leave a marker that a reload or a navigation would wipe out."""
    page.evaluate("window.__samePage = true")


def is_same_page(page) -> bool:
    """True while the page marked by mark_page has not been reloaded or left."""
    return page.evaluate("window.__samePage === true")


def record_round_statuses(page) -> set:
    """The statuses the round page shows from now on, as it updates itself in place."""
    seen = set()
    page.expose_function("noteStatus", lambda s: seen.add(s))
    page.evaluate("""new MutationObserver(() => window.noteStatus(document.querySelector('#round-status').dataset.status))
                     .observe(document.querySelector('#round-status'), {attributes: true, childList: true})""")
    return seen


def playground_compare(page, base_url: str, project, checkpoint_a, checkpoint_b, prompt: str) -> dict:
    """Stream two checkpoints' answers to one prompt side by side; returns how many times
    each answer's text changed (more than once: it grew as it generated)."""
    page.goto(f"{base_url}/studio/projects/{project.pk}/playground/")
    page.fill("#id_prompt", prompt)
    page.select_option("#id_checkpoint_a", str(checkpoint_a.pk))
    page.select_option("#id_checkpoint_b", str(checkpoint_b.pk))
    page.fill("#id_max_new_tokens", "24")
    page.fill("#id_seed", "3")
    page.evaluate("""window.__pieces = {a: 0, b: 0};
        for (const side of ['a', 'b']) new MutationObserver(() => window.__pieces[side]++)
            .observe(document.querySelector('#answer-' + side + '-text'), {childList: true, characterData: true, subtree: true});""")
    page.click("#playground-go")
    page.wait_for_selector('#playground-form[data-state="idle"]', timeout=60_000)
    return page.evaluate("window.__pieces")


def rollback_then_promote(page, base_url: str, project, new, parent) -> None:
    """On the checkpoints page: roll back from `new` to `parent`, then promote `new` again,
    each with a reason, checking the active policy the page shows after each."""
    page.goto(f"{base_url}/studio/projects/{project.pk}/checkpoints/")
    assert page.inner_text("#active-name") == new.name
    page.fill("#reason-rollback", "round 1 rambles")
    page.click("#rollback-form button[type=submit]")
    page.wait_for_load_state()
    assert page.inner_text("#active-name") == parent.name
    page.fill(f"#reason-promote-{new.pk}", "it was fine after all")
    page.click(f"#promote-{new.pk} button[type=submit]")
    page.wait_for_load_state()
    assert page.inner_text("#active-name") == new.name
    history = page.inner_text("#checkpoint-history")
    assert "round 1 rambles" in history and "it was fine after all" in history
