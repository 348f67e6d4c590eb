<?php
/**
 * WooCommerce → Settings → Wallet Bridge: the bridge's URL and the shop's API key, and a connection test.
 * Nothing else: the wallet's rules are set in the bridge's console.
 *
 * @package WalletBridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * The settings tab. The API key is write-only: the page never prints it back.
 */
class Wallet_Bridge_Settings extends WC_Settings_Page {

	/**
	 * The tab's id and label; the stored key is kept when the field is left empty.
	 */
	public function __construct() {
		$this->id    = 'wallet_bridge';
		$this->label = __( 'Wallet Bridge', 'wallet-bridge' );
		add_filter( 'woocommerce_admin_settings_sanitize_option_' . Wallet_Bridge_Client::KEY_OPTION, array( $this, 'keep_stored_key' ) );
		add_action( 'woocommerce_admin_field_wallet_bridge_test', array( $this, 'test_button' ) );
		parent::__construct();
	}

	/**
	 * The fields of the tab.
	 */
	protected function get_settings_for_default_section() {
		$stored = '' !== (string) get_option( Wallet_Bridge_Client::KEY_OPTION, '' );
		return array(
			array(
				'title' => __( 'Wallet Bridge', 'wallet-bridge' ),
				'type'  => 'title',
				'desc'  => __( 'Connect the shop to its Wallet Bridge. Wallet rules (partial payments, top-ups, points) are set in the bridge\'s console.', 'wallet-bridge' ),
				'id'    => 'wallet_bridge_connection',
			),
			array(
				'title'       => __( 'Bridge URL', 'wallet-bridge' ),
				'id'          => Wallet_Bridge_Client::URL_OPTION,
				'type'        => 'url',
				'placeholder' => 'https://wallet.example.com',
				'default'     => '',
			),
			array(
				'title'       => __( 'API key', 'wallet-bridge' ),
				'id'          => Wallet_Bridge_Client::KEY_OPTION,
				'type'        => 'password',
				'value'       => '', // never printed back into the page.
				'placeholder' => $stored ? __( 'Stored — type a new key to replace it', 'wallet-bridge' ) : 'wb_…',
				'desc'        => __( 'The shop\'s API key printed by `wallet-bridge shop create`.', 'wallet-bridge' ),
				'autoload'    => false,
			),
			array(
				'type' => 'wallet_bridge_test',
				'id'   => 'wallet_bridge_test',
			),
			array(
				'type' => 'sectionend',
				'id'   => 'wallet_bridge_connection',
			),
		);
	}

	/**
	 * An empty key field keeps the stored key.
	 *
	 * @param string|null $value What was posted.
	 */
	public function keep_stored_key( $value ) {
		$value = trim( (string) $value );
		return '' === $value ? (string) get_option( Wallet_Bridge_Client::KEY_OPTION, '' ) : $value;
	}

	/**
	 * The "Test connection" button: a link to admin-post.php with a nonce (saved settings are tested).
	 */
	public function test_button() {
		// add_query_arg, not wp_nonce_url: that one HTML-escapes, and esc_url below would escape twice.
		$url = add_query_arg( '_wpnonce', wp_create_nonce( 'wallet_bridge_test' ), admin_url( 'admin-post.php?action=wallet_bridge_test' ) );
		printf(
			'<tr><th scope="row">%1$s</th><td><a class="button" href="%2$s">%3$s</a></td></tr>',
			esc_html__( 'Connection', 'wallet-bridge' ),
			esc_url( $url ),
			esc_html__( 'Test connection', 'wallet-bridge' )
		);
	}
}
