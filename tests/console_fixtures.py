"""Fixtures of the console's tests (loaded with `pytest_plugins`): a merchant of the shop, and a signed-in client."""

from __future__ import annotations

import pytest

from tests.console_support import make_user, sign_in


@pytest.fixture
def merchant(services, shop):
    return make_user(services, shop.shop.id)


@pytest.fixture
def console(client, merchant):
    """A test client signed in as the shop's merchant."""
    assert sign_in(client).status_code == 302
    return client
