"""Reports per shop and period: money and points movements by kind, wallet usage by orders, outstanding
liability over time, and a reconciliation that closes.

Every query is a range scan on `ledger_transactions (shop_id, created_at)` (or `shop_orders (shop_id,
created_at)`), joined to the transactions' entries by `entries.transaction_id`: its cost follows the number
of transactions in the period, not the size of the history. Sums are fetched per day of the shop's time zone
(its `timezone` setting, UTC by default), grouped by a date expression chosen per dialect, and folded into
weeks and months here, so the SQL is the same on SQLite and PostgreSQL.

A day D of a zone is [start_of(D, zone), start_of(D + 1, zone)): from local midnight to the next one, in UTC,
23 or 25 hours long on the days the clocks change. The SQL puts each timestamp on the same local day
(`_local_day`), so the bounds of a period and its daily buckets agree.

Customer accounts (wallets, points) are the entries with a `balance_after`; system accounts keep none
(see `Account`), so the customer side of a transaction needs no join to `accounts`.

Balances at a moment (opening and closing) are computed from whichever side is shorter: the sum of the
customer entries before the moment, or the stored balances now minus the entries since. A report of recent
weeks therefore never reads old history, and one of the first weeks never reads recent history.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import Date, String, case, cast, func, select
from sqlalchemy.orm import Session

from bridge.accounts import SystemAccount
from bridge.models import Account, Entry, LedgerTransaction, ShopOrder, utcnow
from bridge.money import POINTS
from bridge.settings_schema import ShopSettings
from bridge.states import PaymentOutcome

GRANULARITIES = ("day", "week", "month")
# The days a period may name: from before any shop's first movement to the last one whose next day, in any
# time zone, is still a date Python can hold (9999-12-31 is the last).
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(9998, 12, 31)
PERIOD_DAY = validate.Range(min=FIRST_DAY, max=LAST_DAY, error=f"Enter a date from {FIRST_DAY} to {LAST_DAY}.")
MAX_DAYS = 3 * 366
MAX_DAILY_BUCKETS = 366

# What a movement is, for the report's breakdowns: every transaction kind belongs to exactly one source (a test
# checks TRANSACTION_KINDS against it), so the sources of a period add up to its reconciliation.
MONEY_SOURCES: tuple[tuple[str, str, tuple[str, ...]], ...] = (  # (column name, label, kinds)
    ("topups", "Top-ups", ("topup",)),
    ("payments", "Wallet payments", ("payment", "capture", "tip")),
    ("refunds", "Refunds and reversals", ("refund_to_wallet", "payment_reversal", "refund_reversal")),
    ("adjustments", "Manual credits and debits", ("adjustment",)),
    ("bonuses", "Bonuses and promotions", ("signup_bonus", "promotion", "cashback", "cashback_reversal")),
    ("conversions", "Points converted", ("points_conversion",)),
    ("withdrawals", "Withdrawals", ("withdrawal", "withdrawal_reversal")),
    ("expiries", "Expired credit", ("expiry",)),
    ("points", "Loyalty points", ("points_earned", "points_clawback", "refund_to_points")),
)
SOURCE_KINDS = {name: kinds for name, _label, kinds in MONEY_SOURCES}
POINTS_ISSUED = ("points_earned", "refund_to_points")
EXPIRIES = ("expiry",)
WALLET_ORDER_OUTCOMES = (PaymentOutcome.PAID, PaymentOutcome.PARTIAL)


def shop_timezone(shop_settings: dict | None) -> str:
    """The IANA name of the shop's time zone (its `timezone` setting; UTC when never set)."""
    return ShopSettings.load(shop_settings).timezone


def local_today(tz: str, now: datetime | None = None) -> date:
    """The date in the zone now (or at `now`)."""
    return (now or utcnow()).astimezone(ZoneInfo(tz)).date()


def start_of(day: date, tz: str) -> datetime:
    """The first moment of `day` in the zone, in UTC: local midnight, or the moment the clocks jump over it
    (a DST change at midnight). Computed by the zone's rules for that date, never from a fixed offset."""
    zone = ZoneInfo(tz)
    midnight = datetime.combine(day, time.min, tzinfo=zone)
    # fold=0 and fold=1 differ only when a clock change skips or repeats midnight: the day starts at the earlier
    # of the two that already falls on `day` there (a day the zone skipped entirely starts where the next one
    # does, and so is empty).
    moments = [midnight.replace(fold=fold).astimezone(UTC) for fold in (0, 1)]
    return min(moment for moment in moments if moment.astimezone(zone).date() >= day)


# The period a report covers --------------------------------------------------------------------------


class ReportPeriodSchema(Schema):
    """A report's period and granularity; the console's form and the CSV links are checked by it. Dates are
    days of the shop's time zone `tz`, and "today" is the date there."""

    def __init__(self, *args, tz: str = "UTC", **kwargs):
        super().__init__(*args, **kwargs)
        self.tz = tz

    start = fields.Date(required=True, validate=PERIOD_DAY)
    end = fields.Date(required=True, validate=PERIOD_DAY)
    granularity = fields.String(load_default="day", validate=validate.OneOf(GRANULARITIES))

    @validates_schema
    def _check_range(self, data, **kwargs):
        start, end = data.get("start"), data.get("end")
        if start is None or end is None:
            return
        if start > end:
            raise ValidationError({"end": ["Must not be before the start."]})
        today = local_today(self.tz)
        if start > today:
            raise ValidationError({"start": ["Must not be in the future."]})
        days = (min(end, today) - start).days + 1
        if days > MAX_DAYS:
            raise ValidationError({"start": [f"A report covers at most {MAX_DAYS} days."]})
        if data.get("granularity", "day") == "day" and days > MAX_DAILY_BUCKETS:
            raise ValidationError({"granularity": ["Choose week or month for a period longer than a year."]})


@dataclass(frozen=True)
class Bucket:
    start: date
    end: date  # inclusive

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]


def make_buckets(start: date, end: date, granularity: str) -> list[Bucket]:
    """Days, ISO weeks (Monday to Sunday) or calendar months, the first and last cut to the period."""
    buckets: list[Bucket] = []
    cursor = start
    while cursor <= end:
        if granularity == "day":
            last = cursor
        elif granularity == "week":
            last = cursor + timedelta(days=6 - cursor.weekday())
        elif granularity == "month":
            following = date(cursor.year + cursor.month // 12, cursor.month % 12 + 1, 1)
            last = following - timedelta(days=1)
        else:
            raise ValueError(f"unknown granularity {granularity!r}")
        last = min(last, end)
        buckets.append(Bucket(cursor, last))
        cursor = last + timedelta(days=1)
    return buckets


# Queries --------------------------------------------------------------------------------------------


def _local_day(session: Session, column, tz: str):
    """The day a timestamp falls on in the zone `tz` (an IANA name), as SQL."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone(tz, column), Date)  # timestamptz → local timestamp in `tz` → its date
    if tz == "UTC":
        # SQLite keeps UTC timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff' text (see UTCDateTime).
        return func.substr(column, 1, 10, type_=String)
    return func.local_date(column, tz, type_=String)  # registered on every SQLite connection (bridge.db)


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


@dataclass(frozen=True)
class IdWindow:
    """The lowest and highest id of a shop's transactions in a time range (None: there are none)."""

    low: int
    high: int


def transaction_window(
    session: Session, shop_id: int, start_at: datetime | None, end_at: datetime | None, kind: str | None = None
) -> IdWindow | None:
    """Read from the (shop_id[, kind], created_at) index. Entries are then fetched by `transaction_id`
    between these ids: a range of the entries' own index, so no plan ever reads entries of other periods
    (a hash join on all entries would follow the size of the history)."""
    # `id + 0`: min/max of the bare primary key would be answered by walking the primary key from one end,
    # filtering by date, through every newer (or older) transaction; this reads the date range only.
    query = select(func.min(LedgerTransaction.id + 0), func.max(LedgerTransaction.id + 0)).where(
        LedgerTransaction.shop_id == shop_id
    )
    if kind is not None:
        query = query.where(LedgerTransaction.kind == kind)
    if start_at is not None:
        query = query.where(LedgerTransaction.created_at >= start_at)
    if end_at is not None:
        query = query.where(LedgerTransaction.created_at < end_at)
    low, high = session.execute(query).one()
    return None if low is None else IdWindow(int(low), int(high))


Windows = dict[tuple[datetime | None, datetime | None], "IdWindow | None"]  # (after, before) → window


def _window(session: Session, shop_id: int, after, before, windows: Windows | None) -> IdWindow | None:
    if windows is not None and (after, before) in windows:
        return windows[(after, before)]
    return transaction_window(session, shop_id, after, before)


def _joined(first: IdWindow | None, second: IdWindow | None) -> IdWindow | None:
    """The window of two adjacent time ranges."""
    if first is None or second is None:
        return first or second
    return IdWindow(min(first.low, second.low), max(first.high, second.high))


def _in_window(window: IdWindow):
    # Only on the entries: the transactions are read by their date index, and a second range on their id
    # would make the planner expect a handful of rows and probe the entries one transaction at a time.
    return Entry.transaction_id.between(window.low, window.high)


@dataclass(frozen=True)
class Movement:
    amount: int  # absolute, minor units or points
    count: int  # transactions


DEPOSIT = "deposit"  # the unit of the shop-side entries on its top-ups account


def daily_movements(
    session: Session,
    shop_id: int,
    currency: str,
    start_at: datetime,
    end_at: datetime,
    windows: Windows | None = None,
    tz: str = "UTC",
) -> dict[tuple[date, str, str, str], Movement]:
    """(day in the zone `tz`, kind, unit, "credit"|"debit") → amount and number of transactions, for transactions
    created in [start_at, end_at). Units: "money" and "points" are the customers' side; "deposit" is the shop's
    top-ups account (what customers paid for top-ups, without any top-up bonus), read in the same scan."""
    window = _window(session, shop_id, start_at, end_at, windows)
    if window is None:
        return {}
    # The account's id, not a join: `account_id + 0` below keeps the planner off the per-account index, which
    # would read every top-up the shop ever received.
    deposits_account = session.scalar(
        select(Account.id).where(
            Account.shop_id == shop_id, Account.code == f"system:{SystemAccount.TOPUPS_RECEIVED}:{currency}"
        )
    )
    unit = case((Entry.balance_after.is_(None), DEPOSIT), (Entry.currency == POINTS, "points"), else_="money").label(
        "unit"
    )
    wanted = Entry.balance_after.is_not(None) & Entry.currency.in_([currency, POINTS])
    if deposits_account is not None:
        wanted = wanted | ((Entry.account_id + 0 == deposits_account) & (LedgerTransaction.kind == "topup"))
    one_side = (
        select(
            _local_day(session, LedgerTransaction.created_at, tz).label("day"),
            LedgerTransaction.kind.label("kind"),
            unit,
            case((Entry.amount > 0, "credit"), else_="debit").label("direction"),
            Entry.amount.label("amount"),
            LedgerTransaction.id.label("transaction_id"),
        )
        .join(Entry, Entry.transaction_id == LedgerTransaction.id)
        .where(
            LedgerTransaction.shop_id == shop_id,
            LedgerTransaction.created_at >= start_at,
            LedgerTransaction.created_at < end_at,
            _in_window(window),
            wanted,
        )
        .subquery()
    )
    c = one_side.c
    rows = session.execute(
        select(
            c.day, c.kind, c.unit, c.direction, func.sum(c.amount), func.count(c.transaction_id.distinct())
        ).group_by(c.day, c.kind, c.unit, c.direction)
    ).all()
    return {
        (_as_date(day), kind, unit, direction): Movement(abs(int(total)), count)
        for day, kind, unit, direction, total, count in rows
    }


def daily_orders(
    session: Session, shop_id: int, start_at: datetime, end_at: datetime, tz: str = "UTC"
) -> dict[date, tuple[int, int]]:
    """Day in the zone `tz` → (orders seen, orders paid wholly or partly by wallet)."""
    seen = (
        select(
            _local_day(session, ShopOrder.created_at, tz).label("day"),
            case((ShopOrder.payment_outcome.in_(WALLET_ORDER_OUTCOMES), 1), else_=0).label("by_wallet"),
        )
        .where(ShopOrder.shop_id == shop_id, ShopOrder.created_at >= start_at, ShopOrder.created_at < end_at)
        .subquery()
    )
    rows = session.execute(select(seen.c.day, func.count(), func.sum(seen.c.by_wallet)).group_by(seen.c.day)).all()
    return {_as_date(day): (int(orders), int(by_wallet or 0)) for day, orders, by_wallet in rows}


def _net_customer_movements(
    session: Session,
    shop_id: int,
    currencies: list[str],
    *,
    after: datetime | None = None,
    before: datetime | None = None,
    windows: Windows | None = None,
) -> dict[str, int]:
    """Currency → the sum of customer entries in the range, in one scan for every currency."""
    window = _window(session, shop_id, after, before, windows)
    if window is None:
        return {}
    query = (
        select(Entry.currency, func.sum(Entry.amount))
        .select_from(LedgerTransaction)
        .join(Entry, Entry.transaction_id == LedgerTransaction.id)
        .where(
            LedgerTransaction.shop_id == shop_id,
            _in_window(window),
            Entry.balance_after.is_not(None),
            Entry.currency.in_(currencies),
        )
        .group_by(Entry.currency)
    )
    if after is not None:
        query = query.where(LedgerTransaction.created_at >= after)
    if before is not None:
        query = query.where(LedgerTransaction.created_at < before)
    return {found: int(total) for found, total in session.execute(query).all()}


def stored_customer_totals(session: Session, shop_id: int, currencies: list[str]) -> dict[str, int]:
    """Currency → what the shop owes its customers now, from the balances stored on their accounts."""
    rows = session.execute(
        select(Account.currency, func.sum(Account.balance))
        .where(Account.shop_id == shop_id, Account.currency.in_(currencies), Account.kind != "system")
        .group_by(Account.currency)
    ).all()
    return {currency: int(total or 0) for currency, total in rows}


def stored_customer_total(session: Session, shop_id: int, currency: str) -> int:
    return stored_customer_totals(session, shop_id, [currency]).get(currency, 0)


def first_activity(session: Session, shop_id: int) -> datetime | None:
    return session.scalar(select(func.min(LedgerTransaction.created_at)).where(LedgerTransaction.shop_id == shop_id))


def balances_at(
    session: Session,
    shop_id: int,
    currencies: list[str],
    at: datetime,
    now: datetime | None = None,
    windows: Windows | None = None,
    known: dict | None = None,
) -> dict[str, int]:
    """Currency → the customers' total balance at the moment `at` (what was owed then). Reads the shorter
    side of the history: the entries before `at`, or the stored balances minus the entries since `at`.
    `known` caches the first activity and the stored totals between calls of one report."""
    now = now or utcnow()
    known = {} if known is None else known
    if "first" not in known:
        known["first"] = first_activity(session, shop_id)
    first = known["first"]
    if first is None or at <= first:
        return dict.fromkeys(currencies, 0)
    if at >= now or (now - at) <= (at - first):
        if "stored" not in known:
            known["stored"] = stored_customer_totals(session, shop_id, currencies)
        since = _net_customer_movements(session, shop_id, currencies, after=at, windows=windows)
        return {c: known["stored"].get(c, 0) - since.get(c, 0) for c in currencies}
    before = _net_customer_movements(session, shop_id, currencies, before=at, windows=windows)
    return {c: before.get(c, 0) for c in currencies}


def balance_at(session: Session, shop_id: int, currency: str, at: datetime, now: datetime | None = None) -> int:
    return balances_at(session, shop_id, [currency], at, now)[currency]


# The report -----------------------------------------------------------------------------------------


@dataclass
class BucketFigures:
    bucket: Bucket
    money: dict[tuple[str, str], Movement] = field(default_factory=dict)  # (kind, direction) → movement
    points: dict[tuple[str, str], Movement] = field(default_factory=dict)
    deposits: Movement = field(default_factory=lambda: Movement(0, 0))
    orders: int = 0
    wallet_orders: int = 0
    liability: int = 0  # money owed at the end of the bucket
    points_outstanding: int = 0

    def total(self, unit: str, kinds: tuple[str, ...] | None, direction: str) -> Movement:
        """The movements of these kinds (None: of every kind) in one direction."""
        cells = self.money if unit == "money" else self.points
        found = [m for (kind, way), m in cells.items() if way == direction and (kinds is None or kind in kinds)]
        return Movement(sum(m.amount for m in found), sum(m.count for m in found))

    def net(self, unit: str, kinds: tuple[str, ...]) -> int:
        return self.total(unit, kinds, "credit").amount - self.total(unit, kinds, "debit").amount

    @property
    def usage_rate(self) -> float | None:
        return self.wallet_orders / self.orders if self.orders else None


@dataclass
class ReconciliationLine:
    kind: str
    credits: int = 0
    debits: int = 0

    @property
    def net(self) -> int:
        return self.credits - self.debits


@dataclass
class Reconciliation:
    """opening + credits − debits − expiries = closing, per source (transaction kind)."""

    unit: str  # money | points
    currency: str
    opening: int
    lines: list[ReconciliationLine]
    expiries: int
    closing: int  # computed on its own, not from the lines

    @property
    def credits(self) -> int:
        return sum(line.credits for line in self.lines)

    @property
    def debits(self) -> int:
        return sum(line.debits for line in self.lines)

    @property
    def expected_closing(self) -> int:
        return self.opening + self.credits - self.debits - self.expiries

    @property
    def difference(self) -> int:
        return self.closing - self.expected_closing

    @property
    def closes(self) -> bool:
        return self.difference == 0


@dataclass
class Report:
    shop_id: int
    currency: str
    start: date
    end: date  # inclusive, never after today
    granularity: str
    buckets: list[BucketFigures]
    money: Reconciliation
    points: Reconciliation
    timezone: str = "UTC"  # whose days `start`, `end` and the buckets are

    @property
    def total_orders(self) -> int:
        return sum(b.orders for b in self.buckets)

    @property
    def total_wallet_orders(self) -> int:
        return sum(b.wallet_orders for b in self.buckets)


def build_report(
    session: Session,
    shop_id: int,
    currency: str,
    start: date,
    end: date,
    granularity: str,
    now: datetime | None = None,
    tz: str = "UTC",
) -> Report:
    """Every figure of the report page for [start, end] (days of the zone `tz`, an IANA name; the end is cut to
    today there)."""
    now = now or utcnow()
    end = min(end, local_today(tz, now))
    start_at, end_at = start_of(start, tz), min(start_of(end + timedelta(days=1), tz), now)
    # Each id window is read once: the period, and what came after it.
    period = transaction_window(session, shop_id, start_at, end_at)
    later = transaction_window(session, shop_id, end_at, None)
    windows: Windows = {(start_at, end_at): period, (end_at, None): later, (start_at, None): _joined(period, later)}
    movements = daily_movements(session, shop_id, currency, start_at, end_at, windows, tz)
    orders = daily_orders(session, shop_id, start_at, end_at, tz)
    units = {"money": currency, "points": POINTS}
    known: dict = {}
    opening_by_currency = balances_at(session, shop_id, list(units.values()), start_at, now, windows, known)
    closing_by_currency = balances_at(session, shop_id, list(units.values()), end_at, now, windows, known)
    opening = {unit: opening_by_currency[code] for unit, code in units.items()}
    closing = {unit: closing_by_currency[code] for unit, code in units.items()}

    by_day: dict[date, dict[str, dict[tuple[str, str], Movement]]] = defaultdict(
        lambda: {"money": {}, "points": {}, DEPOSIT: {}}
    )
    for (day, kind, unit, direction), movement in movements.items():
        by_day[day][unit][(kind, direction)] = movement

    figures: list[BucketFigures] = []
    running = dict(opening)
    for bucket in make_buckets(start, end, granularity):
        into = BucketFigures(bucket)
        for day in bucket.days:
            for unit, target in (("money", into.money), ("points", into.points)):
                for key, movement in by_day.get(day, {}).get(unit, {}).items():
                    before = target.get(key, Movement(0, 0))
                    target[key] = Movement(before.amount + movement.amount, before.count + movement.count)
                    running[unit] += movement.amount if key[1] == "credit" else -movement.amount
            for movement in by_day.get(day, {}).get(DEPOSIT, {}).values():
                into.deposits = Movement(into.deposits.amount + movement.amount, into.deposits.count + movement.count)
            day_orders, day_wallet_orders = orders.get(day, (0, 0))
            into.orders += day_orders
            into.wallet_orders += day_wallet_orders
        into.liability, into.points_outstanding = running["money"], running["points"]
        figures.append(into)

    return Report(
        shop_id=shop_id,
        currency=currency,
        start=start,
        end=end,
        granularity=granularity,
        buckets=figures,
        money=_reconcile("money", currency, movements, opening["money"], closing["money"]),
        points=_reconcile("points", POINTS, movements, opening["points"], closing["points"]),
        timezone=tz,
    )


def _reconcile(unit: str, currency: str, movements: dict, opening: int, closing: int) -> Reconciliation:
    lines: dict[str, ReconciliationLine] = {}
    expiries = 0
    for (_day, kind, movement_unit, direction), movement in movements.items():
        if movement_unit != unit:
            continue
        if kind in EXPIRIES and direction == "debit":
            expiries += movement.amount
            continue
        line = lines.setdefault(kind, ReconciliationLine(kind))
        if direction == "credit":
            line.credits += movement.amount
        else:
            line.debits += movement.amount
    ordered = sorted(lines.values(), key=lambda line: (-line.credits, line.debits, line.kind))
    return Reconciliation(unit, currency, opening, ordered, expiries, closing)


# Tables: what the page shows and the CSV files hold ----------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str  # the CSV header
    label: str  # the page's header
    kind: str  # date | money | points | count | rate | text


@dataclass
class Table:
    name: str
    title: str
    columns: list[Column]
    rows: list[list]


TABLES = ("wallet", "points", "usage", "liability", "reconciliation")


def _money_pair(name: str, label: str) -> list[Column]:
    return [Column(f"{name}_amount", label, "money"), Column(f"{name}_count", "#", "count")]


def report_table(report: Report, name: str) -> Table:
    """One of TABLES as columns and raw values (minor units, points, counts, rates as fractions)."""
    if name == "wallet":
        columns = [
            Column("period_start", "Period", "date"),
            *_money_pair("credited", "Credited"),
            *_money_pair("debited", "Debited (with expiries)"),
            *_money_pair("deposits", "Top-ups paid"),
            *(Column(f"{key}_net", f"{label} (net)", "money") for key, label, _ in MONEY_SOURCES),
        ]
        rows = []
        for b in report.buckets:
            credited, debited = b.total("money", None, "credit"), b.total("money", None, "debit")
            rows.append(
                [
                    b.bucket.start,
                    credited.amount,
                    credited.count,
                    debited.amount,
                    debited.count,
                    b.deposits.amount,
                    b.deposits.count,
                    *(b.net("money", kinds) for _, _, kinds in MONEY_SOURCES),
                ]
            )
        return Table(name, "Wallet money", columns, rows)
    if name == "points":
        columns = [
            Column("period_start", "Period", "date"),
            Column("points_credited", "Credited", "points"),
            Column("points_debited", "Debited (with expiries)", "points"),
            Column("points_issued", "Issued", "points"),
            Column("points_converted", "Converted to money", "points"),
            Column("points_clawed_back", "Clawed back", "points"),
        ]
        rows = [
            [
                b.bucket.start,
                b.total("points", None, "credit").amount,
                b.total("points", None, "debit").amount,
                b.total("points", POINTS_ISSUED, "credit").amount,
                b.total("points", ("points_conversion",), "debit").amount,
                b.total("points", ("points_clawback",), "debit").amount,
            ]
            for b in report.buckets
        ]
        return Table(name, "Loyalty points", columns, rows)
    if name == "usage":
        columns = [
            Column("period_start", "Period", "date"),
            Column("orders", "Orders", "count"),
            Column("wallet_orders", "Paid wholly or partly by wallet", "count"),
            Column("usage_rate", "Usage rate", "rate"),
        ]
        rows = [[b.bucket.start, b.orders, b.wallet_orders, b.usage_rate] for b in report.buckets]
        return Table(name, "Wallet usage", columns, rows)
    if name == "liability":
        columns = [
            Column("period_end", "End of period", "date"),
            Column("liability", "Owed to customers", "money"),
            Column("points_outstanding", "Points outstanding", "points"),
        ]
        rows = [[b.bucket.end, b.liability, b.points_outstanding] for b in report.buckets]
        return Table(name, "Outstanding liability", columns, rows)
    if name == "reconciliation":
        columns = [
            Column("unit", "Unit", "text"),
            Column("line", "Line", "text"),
            Column("credits", "Credits", "amount"),
            Column("debits", "Debits", "amount"),
            Column("balance", "Balance", "amount"),
        ]
        rows: list[list] = []
        for rec in (report.money, report.points):
            rows.append([rec.currency, "opening balance", None, None, rec.opening])
            rows += [[rec.currency, line.kind, line.credits, line.debits, None] for line in rec.lines]
            rows.append([rec.currency, "expiry", None, rec.expiries, None])
            rows.append(
                [
                    rec.currency,
                    "opening + credits - debits - expiries",
                    rec.credits,
                    rec.debits + rec.expiries,
                    rec.expected_closing,
                ]
            )
            rows.append([rec.currency, "closing balance", None, None, rec.closing])
            rows.append([rec.currency, "difference", None, None, rec.difference])
        return Table(name, "Reconciliation", columns, rows)
    raise KeyError(name)
