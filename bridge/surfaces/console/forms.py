"""Forms: what a person types, turned into the values the domain's schemas check.

A form here only converts units (12.50 → 1250 minor units, 15 % → 1500 basis points, "a, b" → a list);
whether a value is allowed is decided by the schema shared with the API (`ShopSettingsSchema`,
`AdjustmentIn`), and its messages are shown next to the field, in the units the person typed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urlsplit

from marshmallow import ValidationError, validate

from bridge.errors import ValidationFailed
from bridge.money import GROUPED, exponent, parse_scaled, to_decimal_string, with_decimal_point
from bridge.settings_schema import ShopSettingsSchema


@dataclass
class Form:
    """Raw values to show again, and one message per field that is wrong."""

    values: dict[str, object] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def get(self, name: str, default: object = "") -> object:
        return self.values.get(name, default)

    def read(self, data, name: str, max_length: int) -> str:
        """The field whole, kept to show again; longer than `max_length` is refused on the field. For fields that
        nothing else bounds (a name, an address, a list); a check of the value that fails says more, and replaces
        this message."""
        value = self.values[name] = typed(data, name)
        if len(value) > max_length:
            self.errors[name] = f"At most {max_length} characters."
        return value


def typed(data, name: str) -> str:
    """What was typed in a field, without the spaces around it. Never cut to a length: cut, "usdt" reads as USD
    and 5.000…001 as 5.00; whoever checks the value refuses it whole."""
    return (data.get(name) or "").strip()


def email_address(data) -> str:
    """Whole: whoever checks it refuses one longer than an address may be (320)."""
    return typed(data, "email")


def first_message(messages) -> str:
    """marshmallow gives lists (and dicts for nested fields); a person needs one sentence."""
    while isinstance(messages, dict | list) and messages:
        messages = next(iter(messages.values())) if isinstance(messages, dict) else messages[0]
    return str(messages) if messages else "Invalid value."


# Units --------------------------------------------------------------------------------------------------


class Invalid(ValueError):
    pass


def _with_decimal_point(raw: str) -> str:
    try:
        return with_decimal_point(raw)
    except ValidationFailed as exc:
        raise Invalid(exc.message) from exc


def parse_money(raw: str, currency: str) -> int:
    raw = raw.strip()
    if not raw:
        raise Invalid("Enter an amount.")
    decimals, other = f"Too many decimals for {currency}.", "Enter an amount such as 12.50."
    return _scaled(raw, exponent(currency), decimals, other)


def parse_percent(raw: str) -> int:
    """A percentage with up to two decimals, as basis points (12.5 or 12,5 → 1250): a decimal comma is read as in
    money fields; a plain decimal only (1e-999999999 would round to 0)."""
    return _scaled(raw.replace("%", "").strip(), 2, "At most two decimals.", "Enter a percentage such as 15 or 12.5.")


def _scaled(raw: str, places: int, too_many_decimals: str, not_a_number: str) -> int:
    try:
        return parse_scaled(_with_decimal_point(raw), places)
    except ValidationFailed as exc:
        problem = (exc.fields or {}).get("amount", "")
        raise Invalid(
            {"too large": "Too large.", "too many decimals": too_many_decimals}.get(problem, not_a_number)
        ) from exc


def parse_integer(raw: str) -> int:
    raw = raw.strip()
    if GROUPED.fullmatch(raw):
        raw = raw.replace(",", "")
    if not re.fullmatch(r"-?\d{1,15}", raw):
        raise Invalid("Enter a whole number.")
    return int(raw)


MAX_ID = 2**63 - 1  # a BIGINT: larger is no row's id, and overflows the database's integers


def query_number(raw: str | None) -> int | None:
    """A page number or an id from a query string (?page=2, ?before=123); None when it is missing or could be
    no row's, so that a link nobody made falls back to the first page."""
    raw = (raw or "").strip()
    if not re.fullmatch(r"[0-9]{1,19}", raw) or int(raw) > MAX_ID:
        return None
    return int(raw)


def show_percent(bp: int) -> str:
    return f"{(Decimal(bp) / 100).normalize():f}"


def show_money(minor: int, currency: str) -> str:
    return to_decimal_string(minor, currency)


# Shop settings -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingField:
    name: str  # the ShopSettingsSchema field
    label: str
    unit: str  # money | percent | integer | bool | choice | list | percent_list | discount | tiers | timezone
    help: str = ""
    choices: tuple[tuple[str, str], ...] = ()
    suffix: str = ""
    kind_field: str = "wallet_discount_kind"  # a "discount" value is a percent or an amount, as this field says


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    intro: str
    fields: tuple[SettingField, ...]


SECTIONS: dict[str, Section] = {
    section.key: section
    for section in (
        Section(
            "general",
            "General",
            "The shop's own days and currencies.",
            (
                SettingField(
                    "timezone",
                    "Time zone",
                    "timezone",
                    "An IANA name such as Europe/Paris or America/New_York. Reports and the overview count "
                    "each day from midnight to midnight there.",
                ),
                SettingField(
                    "extra_currencies",
                    "Other accepted currencies",
                    "list",
                    "ISO codes besides the shop's own, separated by commas (e.g. USD, GBP); each gets wallets "
                    "of its own. An order in any other currency moves no money: its delivery is kept as "
                    "failed on the Operations page.",
                ),
            ),
        ),
        Section(
            "gateway",
            "Wallet gateway",
            "How checkout treats orders paid by wallet.",
            (
                SettingField(
                    "wallet_payment_methods",
                    "Wallet payment method ids",
                    "list",
                    "The WooCommerce payment method ids that mean “pay by wallet”, separated by commas.",
                ),
                SettingField(
                    "partial_payments",
                    "Allow partial payments",
                    "bool",
                    "When the wallet does not cover the order, take what it holds and let another method pay the rest.",
                ),
                SettingField(
                    "wallet_discount_kind",
                    "Discount for paying by wallet",
                    "choice",
                    choices=(("none", "No discount"), ("percent", "Percent of the order"), ("fixed", "Fixed amount")),
                ),
                SettingField(
                    "wallet_discount_value",
                    "Discount value",
                    "discount",
                    "A percentage (e.g. 5) or an amount (e.g. 2.50), depending on the kind.",
                ),
                SettingField(
                    "unpaid_order_status",
                    "An unpaid wallet order becomes",
                    "choice",
                    choices=(("failed", "Failed"), ("on-hold", "On hold")),
                ),
                SettingField(
                    "failed_order_release_days",
                    "Return a failed order's wallet part after",
                    "integer",
                    "A partly paid order whose other payment failed keeps the wallet part while the "
                    "customer may pay again; after this many days it goes back to the wallet. 0: never.",
                    suffix="days",
                ),
            ),
        ),
        Section(
            "funding",
            "Funding",
            "Top-ups, welcome bonus, loyalty points and promotional credit.",
            (
                SettingField("topup_minimum", "Top-up minimum", "money"),
                SettingField("topup_maximum", "Top-up maximum", "money", "0 means no maximum."),
                SettingField(
                    "topup_bonus_bp",
                    "Top-up bonus",
                    "percent",
                    "Promotional credit added to each top-up from the threshold below; 0 for none.",
                    suffix="%",
                ),
                SettingField(
                    "topup_bonus_threshold", "Top-up bonus from", "money", "The smallest top-up that earns the bonus."
                ),
                SettingField(
                    "signup_bonus", "Sign-up bonus", "money", "Credited once to each new customer; 0 for none."
                ),
                SettingField(
                    "points_per_currency_unit",
                    "Points per currency unit spent",
                    "integer",
                    "0 turns loyalty points off.",
                ),
                SettingField(
                    "points_base",
                    "Points are earned on",
                    "choice",
                    "Tax never earns points.",
                    choices=(("items", "The items"), ("items_and_shipping", "The items and shipping")),
                ),
                SettingField("points_conversion_points", "Conversion: points", "integer", "How many points …"),
                SettingField("points_conversion_value", "Conversion: worth", "money", "… are worth this much."),
                SettingField("points_conversion_minimum", "Minimum points to convert", "integer"),
                SettingField(
                    "points_auto_convert_threshold",
                    "Convert automatically from",
                    "integer",
                    "Points are converted to wallet money once a customer has this many; 0 for never.",
                ),
                SettingField(
                    "promotional_expiry_days",
                    "Promotional credit expires after",
                    "integer",
                    "Bonuses and converted points; 0 means they never expire.",
                    suffix="days",
                ),
            ),
        ),
        Section(
            "cashback",
            "Cashback",
            "A share of each paid order back into the customer's wallet, as promotional "
            "credit (it expires with bonuses); refunds take it back pro rata.",
            (
                SettingField(
                    "cashback_kind",
                    "Cashback",
                    "choice",
                    choices=(
                        ("none", "No cashback"),
                        ("percent", "Percent of the order"),
                        ("fixed", "Fixed amount per order"),
                    ),
                ),
                SettingField(
                    "cashback_value",
                    "Cashback value",
                    "discount",
                    "A percentage (e.g. 2) or an amount (e.g. 1.50), depending on the kind; on what was "
                    "paid for the goods without tax (and shipping when points count it).",
                    kind_field="cashback_kind",
                ),
                SettingField("cashback_minimum_order", "From an order of", "money", "0 for any order."),
                SettingField("cashback_cap", "At most per order", "money", "0 means no cap."),
                SettingField(
                    "cashback_on",
                    "Credited when the order is",
                    "choice",
                    "Completed waits until the goods are delivered, so fewer returns need taking back.",
                    choices=(("completed", "Completed"), ("paid", "Paid (processing or completed)")),
                ),
            ),
        ),
        Section(
            "withdrawals",
            "Withdrawals",
            "Customers taking back money they deposited (top-ups) to their card.",
            (
                SettingField(
                    "withdrawal_approval",
                    "Withdrawal requests are",
                    "choice",
                    "Held for approval: the amount is reserved on the wallet until you approve or decline "
                    "the request on the Withdrawals page.",
                    choices=(("automatic", "Paid out at once"), ("manual", "Held for your approval")),
                ),
                SettingField("withdrawal_minimum", "Withdrawal minimum", "money"),
                SettingField("withdrawal_maximum", "Withdrawal maximum", "money", "0 means no maximum."),
            ),
        ),
        Section(
            "refunds",
            "Refunds",
            "Where refunds go, and how long customers may return goods.",
            (
                SettingField(
                    "refund_destination",
                    "Default refund destination",
                    "choice",
                    choices=(
                        ("wallet", "Wallet (store credit)"),
                        ("original", "Original payment method"),
                        ("customer_choice", "Customer's choice"),
                    ),
                ),
                SettingField(
                    "refund_wallet_bonus_bp",
                    "Bonus for choosing store credit",
                    "percent",
                    "Added to refunds paid into the wallet instead of the original method.",
                    suffix="%",
                ),
                SettingField(
                    "card_refund_days",
                    "Refunds to the card within",
                    "integer",
                    "Days after the order when a refund may still go to the original method; after that, "
                    "within the return window, to the wallet only. 0: the whole return window.",
                    suffix="days",
                ),
                SettingField(
                    "return_windows",
                    "Return windows by loyalty tier",
                    "tiers",
                    "A customer's lifetime spend decides the tier; the lowest tier starts at 0.",
                ),
            ),
        ),
        Section(
            "privacy",
            "Privacy",
            "How long the bridge keeps customers' details it does not need any more.",
            (
                SettingField(
                    "webhook_body_retention_days",
                    "Keep webhook bodies for",
                    "integer",
                    "Deliveries from the shop hold customers' names and addresses; once applied, their "
                    "bodies are emptied after this many days by the daily wallet-bridge prune.",
                    suffix="days",
                ),
            ),
        ),
        Section(
            "tips",
            "Tips",
            "Tip presets offered at checkout.",
            (
                SettingField("tips_enabled", "Offer tips", "bool"),
                SettingField(
                    "tip_presets_bp",
                    "Presets",
                    "percent_list",
                    "Percentages separated by commas, e.g. 15, 20, 25.",
                    suffix="%",
                ),
            ),
        ),
    )
}

TIER_ROWS_EXTRA = 2  # empty rows offered under the existing tiers
SETTING_LENGTH = 1_000  # a field's characters: room for any list the schema allows; longer is refused unread


def settings_form(section: Section, settings: dict, currency: str) -> Form:
    """The stored settings as the form shows them."""
    form = Form()
    for spec in section.fields:
        value = settings.get(spec.name)
        if spec.unit == "money":
            form.values[spec.name] = show_money(value, currency)
        elif spec.unit == "percent":
            form.values[spec.name] = show_percent(value)
        elif spec.unit == "discount":
            kind = settings.get(spec.kind_field)
            form.values[spec.name] = show_money(value, currency) if kind == "fixed" else show_percent(value)
        elif spec.unit == "list":
            form.values[spec.name] = ", ".join(value)
        elif spec.unit == "percent_list":
            form.values[spec.name] = ", ".join(show_percent(v) for v in value)
        elif spec.unit == "tiers":
            rows = [
                {
                    "tier": w["tier"],
                    "min_lifetime_spend": show_money(w["min_lifetime_spend"], currency),
                    "days": str(w["days"]),
                }
                for w in value
            ]
            form.values[spec.name] = rows + [{"tier": "", "min_lifetime_spend": "", "days": ""}] * TIER_ROWS_EXTRA
        elif spec.unit == "bool":
            form.values[spec.name] = bool(value)
        else:
            form.values[spec.name] = "" if value is None else str(value)
    return form


def _tier_rows(data) -> list[dict]:
    """Each row whole: the schema bounds a tier's name, the money and integer parsers its spend and days."""
    rows = []
    index = 0
    while f"tier_{index}_name" in data and index < 50:
        rows.append(
            {
                "tier": typed(data, f"tier_{index}_name"),
                "min_lifetime_spend": typed(data, f"tier_{index}_spend"),
                "days": typed(data, f"tier_{index}_days"),
            }
        )
        index += 1
    return rows


def parse_settings(section: Section, data, stored: dict, currency: str) -> tuple[Form, dict | None]:
    """The section's fields from the posted form over the stored settings, checked by ShopSettingsSchema.
    Returns the form (values and errors) and the complete new settings, or None when anything is wrong."""
    form = Form()
    parsed: dict = {}
    tier_positions: list[int] = []  # the form row of each tier passed to the schema
    for spec in section.fields:
        if spec.unit == "bool":
            form.values[spec.name] = parsed[spec.name] = data.get(spec.name) in ("on", "true", "1", "yes")
            continue
        if spec.unit == "tiers":
            rows = _tier_rows(data)
            form.values[spec.name] = rows + [{"tier": "", "min_lifetime_spend": "", "days": ""}] * (
                TIER_ROWS_EXTRA if len(rows) < 10 else 0
            )
            windows = []
            for position, row in enumerate(rows):
                if not any(row.values()):
                    continue
                try:
                    spend = parse_money(row["min_lifetime_spend"] or "0", currency)
                except Invalid as exc:
                    form.errors[f"tier_{position}_spend"] = str(exc)
                    continue
                try:
                    days = parse_integer(row["days"])
                except Invalid as exc:
                    form.errors[f"tier_{position}_days"] = str(exc)
                    continue
                windows.append({"tier": row["tier"], "min_lifetime_spend": spend, "days": days})
                tier_positions.append(position)
            parsed[spec.name] = windows
            continue
        raw = form.read(data, spec.name, SETTING_LENGTH)
        if spec.name in form.errors:  # too long: not split into thousands of items to check one by one
            continue
        try:
            parsed[spec.name] = _parse_value(spec, raw, data, currency)
        except Invalid as exc:
            form.errors[spec.name] = str(exc)
    # The schema checks whatever parsed even when something did not: every field's problem is shown at once
    # (a field that did not parse keeps its own message, and its stored value stands in for the rules).
    try:
        loaded = ShopSettingsSchema().load({**stored, **parsed})
    except ValidationError as exc:
        for name, messages in exc.messages.items():
            _place_error(form, section, name, messages, currency, tier_positions)
        return form, None
    return (form, None) if form.errors else (form, loaded)


def _parse_value(spec: SettingField, raw: str, data, currency: str):
    if spec.unit == "money":
        return parse_money(raw, currency)
    if spec.unit == "percent":
        return parse_percent(raw)
    if spec.unit == "integer":
        return parse_integer(raw)
    if spec.unit == "discount":
        kind = typed(data, spec.kind_field)
        if kind == "fixed":
            return parse_money(raw or "0", currency)
        if kind == "percent":
            return parse_percent(raw or "0")
        return 0
    if spec.unit == "list":
        return [item.strip() for item in raw.split(",") if item.strip()]
    if spec.unit == "percent_list":
        return [parse_percent(item) for item in raw.split(",") if item.strip()]
    return raw  # choice: the schema says which values are allowed


def _place_error(form: Form, section: Section, name: str, messages, currency: str, tier_positions: list[int]) -> None:
    spec = next((s for s in section.fields if s.name == name), None)
    if spec is None:  # a rule on a field of another section (stored value): say it at the top
        form.errors.setdefault("_section", f"{name.replace('_', ' ')}: {first_message(messages)}")
        return
    if spec.unit == "tiers" and isinstance(messages, dict):
        for index, problems in messages.items():
            position = tier_positions[index] if isinstance(index, int) and index < len(tier_positions) else 0
            column = {"tier": "name", "min_lifetime_spend": "spend", "days": "days"}
            for key, problem in problems.items() if isinstance(problems, dict) else [("tier", problems)]:
                form.errors.setdefault(f"tier_{position}_{column.get(key, 'name')}", first_message(problem))
        return
    form.errors.setdefault(name, _in_display_units(spec, first_message(messages), currency, form))


def _in_display_units(spec: SettingField, message: str, currency: str, form: Form) -> str:
    """The schema speaks in minor units and basis points; say the limits as the person typed them."""
    schema_field = ShopSettingsSchema().fields[spec.name]
    inner = getattr(schema_field, "inner", None)
    lengths = [v for v in schema_field.validators if isinstance(v, validate.Length)]
    if lengths and message.startswith(("Length must", "Shorter than", "Longer than")):
        return f"Enter between {lengths[0].min or 0} and {lengths[0].max} values."
    ranges = [v for v in (inner or schema_field).validators if isinstance(v, validate.Range)]
    if not ranges or not message.startswith(("Must be greater", "Must be less")):  # Range's own wording only
        return message
    unit = spec.unit
    if unit == "discount":
        unit = "money" if form.values.get(spec.kind_field) == "fixed" else "percent"
    low, high = ranges[0].min, ranges[0].max

    def show(value: int) -> str:
        if unit in ("percent", "percent_list"):
            return f"{show_percent(value)} %"
        if unit == "money":
            return f"{show_money(value, currency)} {currency}"
        return str(value)

    if low is not None and high is not None:
        return f"Must be between {show(low)} and {show(high)}."
    if low is not None:
        return f"Must be at least {show(low)}."
    return f"Must be at most {show(high)}."


# Connection, shop and user forms -------------------------------------------------------------------------


def check_url(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Enter the shop's address, starting with https://"
    return None


def mask_secret(value: str | None, keep: int = 4) -> str:
    """ck_…1a2b: enough to recognise a key, never enough to use it."""
    if not value:
        return ""
    prefix = value[:3] if value[:3] in ("ck_", "cs_") else ""
    return f"{prefix}…{value[-keep:]}" if len(value) > keep + len(prefix) else "…"
