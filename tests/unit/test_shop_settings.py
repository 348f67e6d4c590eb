"""Shop settings as the rules read them: one frozen value, built from the stored dict by the shared schema."""

from __future__ import annotations

import dataclasses

import pytest
from marshmallow import ValidationError

from bridge.settings_schema import ReturnWindow, ShopSettings, ShopSettingsSchema, load_settings


def test_every_schema_field_is_an_attribute_and_nothing_else():
    assert {field.name for field in dataclasses.fields(ShopSettings)} == set(ShopSettingsSchema().fields)


def test_built_from_the_stored_dict_over_the_defaults():
    windows = [
        {"tier": "Gold", "min_lifetime_spend": 1000, "days": 60},
        {"tier": "Standard", "min_lifetime_spend": 0, "days": 30},
    ]
    settings = ShopSettings.load(
        {"signup_bonus": 500, "wallet_payment_methods": ["wallet", "cheque"], "return_windows": windows}
    )
    assert settings.signup_bonus == 500 and settings.topup_minimum == load_settings({})["topup_minimum"]
    assert settings.wallet_payment_methods == ("wallet", "cheque")
    assert settings.return_windows == (ReturnWindow("Standard", 0, 30), ReturnWindow("Gold", 1000, 60))
    assert ShopSettings.load(None) == ShopSettings.load({})


def test_it_cannot_be_changed_in_passing():
    settings = ShopSettings.load({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.signup_bonus = 1  # type: ignore[misc]
    assert isinstance(settings.tip_presets_bp, tuple) and isinstance(settings.extra_currencies, tuple)
    assert hash(settings)  # no list inside: usable as a key


def test_stored_settings_the_schema_refuses_are_refused():
    with pytest.raises(ValidationError):
        ShopSettings.load({"topup_minimum": 8000, "topup_maximum": 5000})
