"""Deliveries put straight into the inbox, as an answered delivery leaves them: for tests of what applies, retries or
shows them (the bridge itself stores a delivery only through `usecases.deliveries.arrival`, after its checks)."""

from sqlalchemy import insert

from bridge.db import unit_of_work
from bridge.models import InboxDelivery
from bridge.states import InboxStatus


def record_delivery(sessions, *, status: str = InboxStatus.RECEIVED, **delivery) -> int:
    """The fields of an inbox row (`shop_id`, `platform`, `topic`, `resource_id`, `delivery_id`, `body`, `error`)."""
    with unit_of_work(sessions) as session:
        stored = insert(InboxDelivery).values(status=status, **delivery).returning(InboxDelivery.id)
        return session.execute(stored).scalar_one()
