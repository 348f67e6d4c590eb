<?php
/**
 * The gateway in the block checkout: its label with the balance and what the wallet covers.
 *
 * @package WalletBridge
 */

defined( 'ABSPATH' ) || exit;

use Automattic\WooCommerce\Blocks\Payments\Integrations\AbstractPaymentMethodType;

/**
 * Registers assets/wallet-blocks.js and hands it the title and description (no secret, no API call from JS).
 */
class Wallet_Bridge_Blocks extends AbstractPaymentMethodType {

	/**
	 * The gateway id.
	 *
	 * @var string
	 */
	protected $name = 'wallet';

	/**
	 * The gateway, for its title and availability.
	 *
	 * @var Wallet_Bridge_Gateway|null
	 */
	private $gateway = null;

	/**
	 * Find the gateway.
	 */
	public function initialize() {
		$gateways      = WC()->payment_gateways()->payment_gateways();
		$this->gateway = $gateways[ $this->name ] ?? null;
	}

	/**
	 * Active when enabled (availability for this customer is the Store API's question, asked of the gateway).
	 */
	public function is_active() {
		return null !== $this->gateway && 'yes' === $this->gateway->enabled;
	}

	/**
	 * The script registering the method with the block checkout.
	 */
	public function get_payment_method_script_handles() {
		wp_register_script(
			'wallet-bridge-blocks',
			plugins_url( 'assets/wallet-blocks.js', WALLET_BRIDGE_FILE ),
			array( 'wc-blocks-registry', 'wc-settings', 'wp-element', 'wp-html-entities' ),
			WALLET_BRIDGE_VERSION,
			true
		);
		return array( 'wallet-bridge-blocks' );
	}

	/**
	 * What the script shows: the title with the balance, and what the wallet covers.
	 */
	public function get_payment_method_data() {
		return array(
			'title'       => $this->gateway ? $this->gateway->get_title() : '',
			'description' => $this->gateway ? $this->gateway->get_description() : '',
			'supports'    => $this->gateway ? array_values( $this->gateway->supports ) : array(),
		);
	}
}
