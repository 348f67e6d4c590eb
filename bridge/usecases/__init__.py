"""The use-case layer: every command the surfaces, the inbox and the worker hand over is handled here, and
only here is a unit of work (one database transaction) opened. Callers build a command's arguments and call
one function; they never hold a session across a shop call or a second transaction.

- `deliveries`: a webhook delivery stored, applied, re-applied, recovered.
- `pushes`: outbox messages claimed, and what their push did recorded.
"""
