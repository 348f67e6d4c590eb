"""WooCommerce webhooks: signature checks and payload parsing (pure), plus the Flask view and topic handlers."""
