"""Shopify webhooks: payload parsing (pure), plus the Flask view and topic handlers."""
