"""One Shopify webhook secret per shop.

Shopify's HMAC covers the body only, not X-Shopify-Shop-Domain, and an app's client secret signs the deliveries
of every shop that installed the app. Two shops of the bridge holding the same secret would accept each other's
deliveries: one for shop S, re-posted to S2's URL with the domain header edited, would verify and move S2's money.
So a secret is refused when connecting a shop if another Shopify shop already holds it (as its current or, during
a rotation, previous secret), and a delivery is refused if its shop shares a secret all the same (two connections
racing, or rows from before this check). Secrets are encrypted with random IVs, so they are compared decrypted.
"""

from __future__ import annotations

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from bridge.errors import ValidationFailed
from bridge.models import Shop
from bridge.security import SecretBox

SHARED = "another Shopify shop of this bridge already uses this webhook secret: give each shop its own app"


def shops_sharing(
    session: Session | Connection, box: SecretBox, shop_id: int, platform: str, secrets: list[str]
) -> list[int]:
    """The other shops of the platform holding any of `secrets`."""
    wanted = {secret for secret in secrets if secret}
    rows = session.execute(
        select(Shop.id, Shop.webhook_secret_enc, Shop.previous_webhook_secret_enc)
        .where(Shop.platform == platform, Shop.id != shop_id)
        .order_by(Shop.id)
    )
    return [other for other, *tokens in rows if any(box.open(token) in wanted for token in tokens if token)]


def refuse_shared_secret(session: Session, box: SecretBox, shop_id: int, platform: str, secret: str) -> None:
    if shops_sharing(session, box, shop_id, platform, [secret]):
        raise ValidationFailed(SHARED, fields={"webhook_secret": SHARED})
