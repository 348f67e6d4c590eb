"""Secrets and settings are worked out once per process per stored content, and handed out safely."""

from cryptography.fernet import Fernet

from bridge import settings_schema
from bridge.security import SecretBox
from bridge.settings_schema import load_settings


def test_a_token_is_decrypted_once_per_process(monkeypatch):
    box = SecretBox((Fernet.generate_key().decode(),))
    token = box.seal("shop-secret")
    decrypted = []

    class Counting:
        def __init__(self, fernet):
            self.fernet = fernet

        def decrypt(self, token):
            decrypted.append(token)
            return self.fernet.decrypt(token)

        def encrypt(self, data):
            return self.fernet.encrypt(data)

    monkeypatch.setattr(box, "_fernet", Counting(box._fernet))
    assert [box.open(token), box.open(memoryview(token)), box.open(token)] == ["shop-secret"] * 3
    assert len(decrypted) == 1
    assert box.open(box.seal("shop-secret")) == "shop-secret" and len(decrypted) == 2  # a new token: a miss


def test_settings_are_loaded_once_per_content_and_each_caller_gets_its_own_copy(monkeypatch):
    loads = []
    real = settings_schema.ShopSettingsSchema.load
    monkeypatch.setattr(settings_schema.ShopSettingsSchema, "load", lambda self, d: loads.append(d) or real(self, d))
    stored = {"wallet_payment_methods": ["wallet-cache-test"]}
    first = load_settings(stored)
    first["wallet_payment_methods"].append("changed by a caller")
    second = load_settings(dict(stored))
    assert second["wallet_payment_methods"] == ["wallet-cache-test"]
    assert len(loads) == 1
    assert load_settings({"wallet_payment_methods": ["wallet-cache-test-2"]})["wallet_payment_methods"] == [
        "wallet-cache-test-2"
    ]
    assert len(loads) == 2
