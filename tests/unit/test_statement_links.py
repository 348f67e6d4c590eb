"""Statement links: a link from the account page lasts an hour, a link in an e-mailed note 30 days."""

import time

import pytest

from bridge import statement_links
from bridge.errors import NotFound
from bridge.statement_links import NOTE_LINK_LIFETIME_SECONDS, StatementLinks, read_statement_token, without_link

SECRET = "unit-secret"
LINKS = StatementLinks(SECRET, "https://bridge.example.test")


def _token(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _later(monkeypatch, seconds: int) -> None:
    now = time.time()
    monkeypatch.setattr(statement_links.time, "time", lambda: now + seconds)


def test_an_account_page_link_expires_after_an_hour(monkeypatch):
    token = _token(LINKS.url(1, "42"))
    assert read_statement_token(SECRET, token).customer_external_id == "42"
    _later(monkeypatch, 3601)
    with pytest.raises(NotFound):
        read_statement_token(SECRET, token)


def test_a_link_in_a_note_still_opens_days_later_and_expires_after_30_days(monkeypatch):
    note = LINKS.note_with_link("€5.00 added to your wallet.", 1, "42")
    token = _token(note)
    _later(monkeypatch, 7 * 86_400)
    assert read_statement_token(SECRET, token).shop_id == 1
    _later(monkeypatch, NOTE_LINK_LIFETIME_SECONDS + 60)
    with pytest.raises(NotFound):
        read_statement_token(SECRET, token)


def test_a_guest_note_has_no_link_and_the_note_reads_the_same_without_it():
    assert LINKS.note_with_link("€5.00 returned.", 1, None) == "€5.00 returned."
    assert without_link(LINKS.note_with_link("€5.00 returned.", 1, "42")) == "€5.00 returned."
