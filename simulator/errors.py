"""WooCommerce's error answers: `{"code", "message", "data"}` where `data` is `{"status": N, ...}` or,
for some endpoints (refund creation), a bare number."""

from __future__ import annotations


class WooError(Exception):
    """An error exactly as the REST API would answer it. Raised by the store and the simulator's helpers;
    the REST layer turns it into the HTTP response."""

    def __init__(self, status: int, code: str, message: str, data: object = None):
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.data = {"status": status} if data is None else data

    def body(self) -> dict:
        return {"code": self.code, "message": self.message, "data": self.data}


def invalid_param(param: str, message: str, detail_code: str = "rest_invalid_param") -> WooError:
    """WordPress's schema-validation failure (HTTP 400 `rest_invalid_param`).

    `param` is the top-level parameter ("fee_lines"); `message` names the exact spot
    ("fee_lines[0][total] is not of type string.").
    """
    details = {param: {"code": detail_code, "message": message, "data": None}}
    data = {"status": 400, "params": {param: message}, "details": details}
    return WooError(400, "rest_invalid_param", f"Invalid parameter(s): {param}", data)


def not_found(code: str, message: str = "Invalid ID.") -> WooError:
    return WooError(404, code, message)


ORDER_NOT_FOUND = "woocommerce_rest_shop_order_invalid_id"
REFUND_ERROR = "woocommerce_rest_cannot_create_order_refund"
