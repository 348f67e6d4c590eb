"""What a platform tells the generic webhook pipeline (webhooks/receive.py): where its headers carry the topic,
signature and delivery id, how a topic is parsed and applied, and the platform's own checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bridge.usecases.deliveries import Topic

__all__ = ["Inbound", "Topic"]


def never(*_args) -> None:
    return None


def always(*_args) -> bool:
    return True


@dataclass(frozen=True)
class Inbound:
    name: str
    topic_header: str
    signature_header: str
    delivery_id_header: str
    topics: Mapping[str, Topic]
    # (content type, body, headers) → the answer to a request that is not a delivery (WooCommerce's ping)
    unsigned_answer: Callable[[str | None, bytes, Mapping], dict | None] = never
    # (headers, the shop's URL) → does the (unsigned) header naming the shop agree with the shop?
    names_the_shop: Callable[[Mapping, str], bool] = always
    one_secret_per_shop: bool = False  # a secret shared by several shops lets one's deliveries be replayed at another
    delivery_ids_unique: bool = False  # a repeated delivery id is a retry of the same delivery
