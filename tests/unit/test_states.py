"""Row states are enums whose values are the strings already stored: renaming one would need a data migration."""

from __future__ import annotations

import json

import pytest

from bridge.states import HoldStatus, InboxStatus, OutboxStatus, PaymentOutcome

STORED = {
    PaymentOutcome: {"paid", "partial", "unpaid", "cancelled", "reversed", "store_credit", "topup"},
    HoldStatus: {"open", "captured", "voided", "expired"},
    InboxStatus: {"received", "applied", "ignored", "failed"},  # ix_inbox_unapplied: status = 'received'
    OutboxStatus: {"pending", "sending", "delivered", "dead", "reconciled"},
}


@pytest.mark.parametrize("states", list(STORED), ids=lambda states: states.__name__)
def test_each_state_is_the_string_stored(states):
    assert {state.value for state in states} == STORED[states]
    for state in states:  # read back from a column, a plain string is the same state
        assert state == state.value and hash(state) == hash(state.value) and states(state.value) is state
        assert f"{state}" == json.loads(json.dumps(state)) == state.value
