"""Importing this module registers every console route on the blueprint."""

from bridge.surfaces.console import (  # noqa: F401
    auth_views,
    customer_views,
    export_views,
    privacy_views,
    report_views,
    settings_views,
    shop_views,
    withdrawal_views,
)
