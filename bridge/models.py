"""Tables. Ledger rows (transactions, entries) are append-only: no code path updates or deletes them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from bridge.db import Base
from bridge.states import HoldStatus, OutboxStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC on both databases (SQLite keeps no offset, so it is put back on read)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return value.astimezone(UTC) if value is not None and value.tzinfo else value

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


Timestamp = UTCDateTime()


class Shop(Base):
    """A tenant: one online shop with its own currency, customers, accounts and keys."""

    __tablename__ = "shops"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    platform: Mapped[str] = mapped_column(String(20))
    url: Mapped[str] = mapped_column(String(500))
    currency: Mapped[str] = mapped_column(String(3))
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    webhook_secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    previous_webhook_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    consumer_key_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    consumer_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    last_synced_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (UniqueConstraint("shop_id", "external_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Account(Base):
    """A wallet (per customer and currency), a points account (per customer) or a shop's system account.

    `balance` and `held` are stored for customer accounts and updated in the same transaction as their
    entries, so reads are O(1). System accounts are the other side of every movement and would be a hot
    row if they kept a running balance: their balance is the sum of their entries (reports compute it).
    """

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("shop_id", "code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    code: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(20))  # wallet | points | system
    currency: Mapped[str] = mapped_column(String(3))
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    overdraft_limit: Mapped[int] = mapped_column(BigInteger, default=0)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    @property
    def tracks_balance(self) -> bool:
        return self.kind != "system"

    @property
    def available(self) -> int:
        return self.balance - self.held


class LedgerTransaction(Base):
    __tablename__ = "ledger_transactions"
    __table_args__ = (
        UniqueConstraint("shop_id", "idempotency_key"),
        Index("ix_ledger_transactions_shop_created", "shop_id", "created_at"),
        Index("ix_ledger_transactions_shop_kind_created", "shop_id", "kind", "created_at"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    kind: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(String(500))
    actor_kind: Mapped[str] = mapped_column(String(20))  # system | webhook | merchant | api_key
    actor_id: Mapped[str | None] = mapped_column(String(120))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    order_ref: Mapped[str | None] = mapped_column(String(64))
    refund_ref: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Entry(Base):
    __tablename__ = "entries"
    __table_args__ = (Index("ix_entries_account_id_id", "account_id", "id"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    balance_after: Mapped[int | None] = mapped_column(BigInteger)  # None on system accounts
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Hold(Base):
    """Money reserved on a wallet: available = balance − open holds. Captured, voided or expired."""

    __tablename__ = "holds"
    __table_args__ = (
        UniqueConstraint("shop_id", "idempotency_key"),
        Index("ix_holds_status_expires", "status", "expires_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    captured_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(20), default=HoldStatus.OPEN)  # a HoldStatus
    reason: Mapped[str] = mapped_column(String(500))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    order_ref: Mapped[str | None] = mapped_column(String(64))
    capture_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"))
    expires_at: Mapped[datetime] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(Timestamp)


class InboxDelivery(Base):
    """Every signed webhook delivery, stored before it is answered."""

    __tablename__ = "inbox"
    __table_args__ = (
        Index("ix_inbox_shop_status", "shop_id", "status"),
        # Only what is still to apply (a few rows at most), for the workers' recovery of stranded deliveries.
        Index(
            "ix_inbox_unapplied",
            "received_at",
            postgresql_where=text("status = 'received'"),
            sqlite_where=text("status = 'received'"),
        ),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    platform: Mapped[str] = mapped_column(String(20))
    topic: Mapped[str] = mapped_column(String(60))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    delivery_id: Mapped[str | None] = mapped_column(String(100))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20))  # an InboxStatus
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(Timestamp)


class OutboxMessage(Base):
    """A message to a shop, written in the same transaction as the ledger change that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("shop_id", "dedupe_key"),
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
        Index("ix_outbox_delivered_at", "delivered_at"),  # retention, and recent deliveries of one shape
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    kind: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict] = mapped_column(JSON)
    dedupe_key: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=OutboxStatus.PENDING)  # an OutboxStatus
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(Timestamp)


class ShopOrder(Base):
    """What the bridge did for one shop order: the business key every order rule dedupes on."""

    __tablename__ = "shop_orders"
    __table_args__ = (UniqueConstraint("shop_id", "external_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    external_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(30))
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    wallet_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    wallet_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    points_earned: Mapped[int] = mapped_column(BigInteger, default=0)
    points_clawed_back: Mapped[int] = mapped_column(BigInteger, default=0)
    payment_outcome: Mapped[str | None] = mapped_column(String(20))  # a PaymentOutcome, None until decided
    # A failed or cancelled order set pending again is a new attempt: its money moves under keys of its own.
    payment_attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    wallet_discount: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # this attempt's
    # The wallet paid part (a fee line on the order): the shop's total is what another method pays.
    paid_in_part: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # What another method paid: the shop's total when it first said paid an order the wallet paid part of, or none of.
    card_paid: Mapped[int | None] = mapped_column(BigInteger)
    # The date of the state in which the bridge reopened the order the wallet had paid whole, for the rest of a
    # raised total: the shop's payment date from before it is the wallet's (WooCommerce keeps it for good).
    reopened_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_modified_at: Mapped[datetime | None] = mapped_column(Timestamp)  # newest shop state seen
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)


class OrderRefund(Base):
    """Each shop refund applied once: where its money went, and points that could not be clawed back."""

    __tablename__ = "order_refunds"
    __table_args__ = (UniqueConstraint("shop_id", "external_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    shop_order_id: Mapped[int] = mapped_column(ForeignKey("shop_orders.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)
    destination: Mapped[str] = mapped_column(String(20))  # wallet | original
    wallet_credit: Mapped[int] = mapped_column(BigInteger, default=0)
    wallet_part: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # of it, wallet money back
    bonus: Mapped[int] = mapped_column(BigInteger, default=0)
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp)  # the shop deleted the refund afterwards
    points_clawed_back: Mapped[int] = mapped_column(BigInteger, default=0)
    points_shortfall: Mapped[int] = mapped_column(BigInteger, default=0)
    transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class CreditLot(Base):
    """Where a wallet's money came from. Cash-like lots (top-ups, refunds) never expire; promotional ones
    (bonuses, gifts, converted points) may. Spending takes the soonest-expiring lots first, so the sum
    of `remaining` over a wallet's lots is its balance."""

    __tablename__ = "credit_lots"
    __table_args__ = (
        Index("ix_credit_lots_account_open", "account_id", "remaining"),
        Index("ix_credit_lots_expiry", "expires_at"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"))
    kind: Mapped[str] = mapped_column(String(20))  # cash | promotional
    source: Mapped[str] = mapped_column(String(30))  # the transaction kind that created it, e.g. topup
    amount: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class LotMovement(Base):
    """A transaction taking money from a lot (positive) or giving it back (negative, on reversal)."""

    __tablename__ = "lot_movements"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("credit_lots.id"), index=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


# Merchant console -----------------------------------------------------------------------------------


class MerchantUser(Base):
    """A person who runs one or more shops from the console. Passwords are argon2 hashes."""

    __tablename__ = "merchant_users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-cased
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # Carried by each session cookie and bumped at sign-out: a cookie of an older generation is refused.
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ShopMembership(Base):
    """Which shops a merchant user may see and change: any other shop is answered 404."""

    __tablename__ = "shop_memberships"
    __table_args__ = (UniqueConstraint("user_id", "shop_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("merchant_users.id"))
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"), index=True)
    role: Mapped[str] = mapped_column(String(20), default="owner")
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class LoginAttempt(Base):
    """Failed sign-ins, counted per e-mail and per address in the database (web processes share it)."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_email_created", "email", "created_at"),
        Index("ix_login_attempts_ip_created", "ip", "created_at"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    ip: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class AuditEvent(Base):
    """Who changed what, when, from what to what: one row per changed field (or per action)."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_shop_id_id", "shop_id", "id"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    shop_id: Mapped[int | None] = mapped_column(ForeignKey("shops.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("merchant_users.id"))
    actor: Mapped[str] = mapped_column(String(320))  # the user's e-mail, or "cli"
    action: Mapped[str] = mapped_column(String(60))  # e.g. settings.funding, wallet.lock, connection.install
    target: Mapped[str | None] = mapped_column(String(200))  # e.g. a customer id
    field: Mapped[str | None] = mapped_column(String(60))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


# Range scans for reports and the console's webhook health (indexes on tables defined above).
Index("ix_shop_orders_shop_created", ShopOrder.shop_id, ShopOrder.created_at)
Index("ix_inbox_shop_topic_received", InboxDelivery.shop_id, InboxDelivery.topic, InboxDelivery.received_at)


class TopupRequest(Base):
    """A customer's request to top up: the shop order the bridge created for it, once per key."""

    __tablename__ = "topup_requests"
    __table_args__ = (UniqueConstraint("shop_id", "idempotency_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    order_external_id: Mapped[str | None] = mapped_column(String(64))
    payment_url: Mapped[str | None] = mapped_column(String(1000))
    # Set while a call is creating the shop order (None otherwise): a retry meanwhile must not create another.
    creating_since: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class RefundRequest(Base):
    """A refund asked for through the bridge (console or API), with the destination the customer chose;
    the shop's refund delivery is matched to it and applied once."""

    __tablename__ = "refund_requests"
    __table_args__ = (UniqueConstraint("shop_id", "idempotency_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    shop_order_id: Mapped[int] = mapped_column(ForeignKey("shop_orders.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger)
    destination: Mapped[str] = mapped_column(String(20))  # card | wallet | points
    reason: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20), default="requested")  # requested | created | applied
    refund_external_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class WithdrawalRequest(Base):
    """A customer's request to withdraw deposited money. While it waits for the merchant its amount is held on
    the wallet (`hold_id`); approving pays it out (refunds of top-up orders to the card), declining releases it."""

    __tablename__ = "withdrawal_requests"
    __table_args__ = (
        UniqueConstraint("shop_id", "idempotency_key"),
        Index("ix_withdrawal_requests_shop_status", "shop_id", "status"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | approved | declined
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("holds.id"))
    decided_by: Mapped[str | None] = mapped_column(String(320))
    decided_at: Mapped[datetime | None] = mapped_column(Timestamp)
    decline_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
