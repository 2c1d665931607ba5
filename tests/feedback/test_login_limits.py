"""Failed logins are limited per account and per address, logged, and explained on the login page."""
import logging

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(monkeypatch):
    """The login limiter's clock, moved by hand."""
    now = {"t": 1_000_000.0}
    monkeypatch.setattr("feedback.services.logins._now", lambda: now["t"])
    return now


def _login(client, username, password, path="/accounts/login/", address="10.0.0.1"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def test_the_eleventh_try_is_refused_even_with_the_right_password_until_the_window_passes(client, alice, clock, caplog):
    with caplog.at_level(logging.WARNING, logger="feedback.services.logins"):
        for _ in range(10):
            response = _login(client, "alice", "wrong")
            assert response.status_code == 200 and b"correct username and password" in response.content
    assert len([r for r in caplog.records if "failed login for account 'alice'" in r.getMessage()]) == 10

    response = _login(client, "alice", "alice-pw-123")
    assert response.status_code == 200  # the form again, not a redirect: not logged in
    assert b"Too many failed logins" in response.content and b"15 minute" in response.content
    assert "_auth_user_id" not in client.session

    clock["t"] += 15 * 60
    response = _login(client, "alice", "alice-pw-123")
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(alice.pk)


def test_an_address_is_limited_across_accounts(client, alice, bob, clock):
    for i in range(10):
        _login(client, f"guess{i}", "wrong", address="10.9.9.9")
    response = _login(client, "bob", "bob-pw-123", address="10.9.9.9")
    assert b"Too many failed logins" in response.content
    response = _login(client, "bob", "bob-pw-123", address="10.1.1.1")  # bob himself, from elsewhere
    assert response.status_code == 302


def test_an_account_is_limited_across_addresses(client, alice, clock):
    for i in range(10):
        _login(client, "alice", "wrong", address=f"10.0.{i}.1")
    response = _login(client, "alice", "alice-pw-123", address="10.7.7.7")
    assert b"Too many failed logins" in response.content


def test_the_admin_login_counts_and_refuses_the_same_way(client, admin_user, clock):
    for _ in range(10):
        _login(client, "root", "wrong", path="/admin/login/")
    response = _login(client, "root", "root-pw-123", path="/admin/login/")
    assert response.status_code == 200 and b"Too many failed logins" in response.content
    # and the limit is the account's, whichever page it is tried on
    assert b"Too many failed logins" in _login(client, "root", "root-pw-123", address="10.3.3.3").content
