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
