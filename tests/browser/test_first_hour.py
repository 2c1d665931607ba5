"""What a new user meets in the first hour: the API docs offline, the studio for annotators."""
import re

import pytest

from tests.browser.conftest import screenshot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_api_docs_render_with_the_network_blocked(page, live_server, login, alice):
    blocked = []

    def only_local(route):
        url = route.request.url
        if re.match(r"^https?://(localhost|127\.0\.0\.1)(:\d+)?/", url):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    page.route("**/*", only_local)
    login(page, "alice", "alice-pw-123")
    page.goto(f"{live_server.url}/api/v1/docs/")
    page.wait_for_selector(".swagger-ui .info .title", timeout=20000)
    assert "RLHF Studio API" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector(".opblock", timeout=20000)  # the schema loaded and the endpoints are listed
    assert blocked == []
    screenshot(page, "api-docs-offline.png")


def test_docs_page_references_only_local_static_files(client, alice):
    client.force_login(alice)
    html = client.get("/api/v1/docs/").content.decode()
    urls = re.findall(r'(?:src|href)\s*=\s*"([^"]+)"', html) + re.findall(r'url:\s*"([^"]+)"', html)
    assert urls and all(u.startswith("/") for u in urls), urls
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)  # no inline script (CSP)


def test_an_annotator_opening_the_studio_is_told_it_is_for_staff(page, live_server, login, alice):
    login(page, "alice", "alice-pw-123")
    response = page.goto(f"{live_server.url}/studio/")
    assert response.status == 403
    assert "This page is for staff" in page.inner_text("#staff-only")
    page.click("text=Back to annotating")
    assert "/annotate/" in page.url
    assert page.locator('link[rel="icon"]').get_attribute("href").startswith("/static/")
