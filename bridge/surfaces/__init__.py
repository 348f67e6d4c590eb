"""The bridge's surfaces: the HTTP API, the merchant console, the customer's statement page, the command line
and the app factory that wires them. They depend on the domain (the rest of `bridge/`), `webhooks/` and
`sync/`; nothing in those imports them."""
