"""Importing this module registers every console route on the blueprint."""

from bridge.console import auth_views, customer_views, report_views, settings_views, shop_views  # noqa: F401
