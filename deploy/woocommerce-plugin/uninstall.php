<?php
/**
 * Deleting the plugin removes what it stored: the bridge's URL and API key, the last failure, its gateway's
 * settings. Nothing about money: the bridge keeps every wallet.
 *
 * @package WalletBridge
 */

defined( 'WP_UNINSTALL_PLUGIN' ) || exit;

foreach ( array( 'wallet_bridge_url', 'wallet_bridge_api_key', 'wallet_bridge_unreachable', 'wallet_bridge_rewrite_version', 'woocommerce_wallet_settings' ) as $wallet_bridge_option ) {
	delete_option( $wallet_bridge_option );
}
