<?php
/**
 * Plugin Name: Wallet Bridge for WooCommerce
 * Description: The customer's Wallet Bridge wallet inside the shop: a "Wallet" payment method that reserves the order's amount before the order is placed, and a Wallet tab in My Account. The bridge stays the system of record: this plugin holds no balances and no money rules.
 * Version: 1.0.0
 * Requires at least: 6.4
 * Requires PHP: 8.1
 * Requires Plugins: woocommerce
 * WC requires at least: 9.0
 * License: MIT
 * Text Domain: wallet-bridge
 *
 * @package WalletBridge
 */

defined( 'ABSPATH' ) || exit;

define( 'WALLET_BRIDGE_VERSION', '1.0.0' );
define( 'WALLET_BRIDGE_FILE', __FILE__ );

require_once __DIR__ . '/includes/class-wallet-bridge-client.php';
require_once __DIR__ . '/includes/class-wallet-bridge-money.php';
require_once __DIR__ . '/includes/class-wallet-bridge-account.php';
require_once __DIR__ . '/includes/class-wallet-bridge-checkout.php';

add_action(
	'before_woocommerce_init',
	static function () {
		if ( class_exists( \Automattic\WooCommerce\Utilities\FeaturesUtil::class ) ) {
			\Automattic\WooCommerce\Utilities\FeaturesUtil::declare_compatibility( 'custom_order_tables', WALLET_BRIDGE_FILE, true );
			\Automattic\WooCommerce\Utilities\FeaturesUtil::declare_compatibility( 'cart_checkout_blocks', WALLET_BRIDGE_FILE, true );
		}
	}
);

add_action(
	'plugins_loaded',
	static function () {
		if ( ! class_exists( 'WC_Payment_Gateway' ) ) {
			return; // WooCommerce is not active: nothing to add to.
		}
		require_once __DIR__ . '/includes/class-wallet-bridge-gateway.php';
		add_filter(
			'woocommerce_payment_gateways',
			static function ( $gateways ) {
				$gateways[] = 'Wallet_Bridge_Gateway';
				return $gateways;
			}
		);
		add_filter(
			'woocommerce_get_settings_pages',
			static function ( $pages ) {
				require_once __DIR__ . '/includes/class-wallet-bridge-settings.php';
				$pages[] = new Wallet_Bridge_Settings();
				return $pages;
			}
		);
		Wallet_Bridge_Account::register();
		Wallet_Bridge_Checkout::register();
		add_action( 'admin_notices', array( 'Wallet_Bridge_Client', 'admin_notice' ) );
		add_action( 'admin_post_wallet_bridge_test', array( 'Wallet_Bridge_Client', 'test_connection' ) );
		add_action( 'woocommerce_blocks_payment_method_type_registration', 'wallet_bridge_register_block_method' );
	}
);

/**
 * The block checkout's side of the gateway (the classic checkout needs none).
 *
 * @param \Automattic\WooCommerce\Blocks\Payments\PaymentMethodRegistry $registry The block checkout's payment methods.
 */
function wallet_bridge_register_block_method( $registry ) {
	require_once __DIR__ . '/includes/class-wallet-bridge-blocks.php';
	$registry->register( new Wallet_Bridge_Blocks() );
}
