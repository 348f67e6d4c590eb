"""Domain errors: each carries a stable code; the HTTP layer maps codes to status codes in one place."""


class DomainError(Exception):
    code = "domain_error"

    def __init__(self, message: str, *, fields: dict | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields
        if code:
            self.code = code


class NotFound(DomainError):
    code = "not_found"


class ValidationFailed(DomainError):
    code = "validation_failed"


class InsufficientFunds(DomainError):
    code = "insufficient_funds"


class WalletLocked(DomainError):
    code = "wallet_locked"


class IdempotencyConflict(DomainError):
    code = "idempotency_conflict"


class UnbalancedTransaction(DomainError):
    code = "unbalanced_transaction"


class InvalidState(DomainError):
    code = "invalid_state"


class ShopCallFailed(Exception):
    """A call to a shop failed; `status` and `code` are the shop's answer when it gave one."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.code = status, code


class PermanentFailure(ShopCallFailed):
    """The shop refused in a way retrying cannot fix (e.g. the order no longer exists)."""


class TemporaryFailure(ShopCallFailed):
    """The shop is down, slow or throttling: try again later."""
