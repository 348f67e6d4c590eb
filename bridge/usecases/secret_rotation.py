"""Fernet key rotation: re-encrypt every shop secret with the newest key (`wallet-bridge secrets rotate`).

FERNET_KEYS lists the keys newest first; the first encrypts and every one decrypts (bridge.security.SecretBox).
After a new key has been put first and every process restarted with the new list, `rotate_shop_secrets`
re-encrypts each encrypted column of each shop with it, one transaction per shop with the shop's row locked,
so a merchant saving new REST keys at the same moment is neither lost nor overwritten. Running it again is
harmless: the plaintexts never change, only the tokens are encrypted afresh with the same newest key.
`shops_not_on(sessions, newest)` then proves that the old keys can go: it lists the shops holding any value
the newest key alone cannot decrypt (see deploy/README.md for the whole procedure).
"""

from __future__ import annotations

from cryptography.fernet import InvalidToken
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bridge.audit import CLI, Who, record
from bridge.db import unit_of_work
from bridge.models import Shop
from bridge.security import SecretBox

# Every encrypted column of a shop, found by the naming convention (…_enc) so a new one is never forgotten.
ENCRYPTED_COLUMNS: tuple[str, ...] = tuple(c.key for c in Shop.__table__.columns if c.key.endswith("_enc"))


class RotationFailed(Exception):
    """A stored value that no configured key decrypts. Names the shop and column, never the value."""

    def __init__(self, shop_id: int, column: str):
        super().__init__(
            f"shop {shop_id}: {column} is not decryptable with any key in FERNET_KEYS "
            "(was a key removed before `wallet-bridge secrets rotate` had run?)"
        )
        self.shop_id, self.column = shop_id, column


def rotate_shop_secrets(sessions: sessionmaker[Session], box: SecretBox, *, who: Who = CLI) -> int:
    """Re-encrypt every encrypted column of every shop with the box's first (newest) key; returns the number
    of shops rotated. One transaction per shop: a failure leaves the shops already done rotated, and a second
    run completes the rest. Raises RotationFailed for a value no key of the box decrypts."""
    with unit_of_work(sessions) as session:
        shop_ids = list(session.execute(select(Shop.id).order_by(Shop.id)).scalars())
    rotated = 0
    for shop_id in shop_ids:
        with unit_of_work(sessions) as session:
            shop = session.execute(
                select(Shop).where(Shop.id == shop_id).with_for_update().execution_options(populate_existing=True)
            ).scalar_one_or_none()
            if shop is None:  # deleted since the list was read
                continue
            columns = [column for column in ENCRYPTED_COLUMNS if getattr(shop, column) is not None]
            for column in columns:
                try:
                    setattr(shop, column, box.rotate(getattr(shop, column)))
                except InvalidToken:
                    raise RotationFailed(shop_id, column) from None
            record(session, who, "secrets.rotate", shop_id=shop_id, new=",".join(columns))
        rotated += 1
    return rotated


def shops_not_on(sessions: sessionmaker[Session], newest: SecretBox) -> list[int]:
    """Ids of the shops holding an encrypted value that `newest` (a box of the newest key alone) cannot
    decrypt: empty means the older keys may be removed from FERNET_KEYS."""
    stale = []
    with unit_of_work(sessions) as session:
        for shop in session.execute(select(Shop).order_by(Shop.id)).scalars():
            try:
                for column in ENCRYPTED_COLUMNS:
                    newest.open(getattr(shop, column))
            except InvalidToken:
                stale.append(shop.id)
    return stale
