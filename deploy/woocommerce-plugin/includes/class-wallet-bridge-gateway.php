<?php
/**
 * The "Wallet" payment gateway: offered to logged-in customers with a wallet while the bridge answers.
 *
 * @package WalletBridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Pays an order from the customer's Wallet Bridge wallet: the amount is reserved at checkout and captured by
 * the bridge when the order's webhook reaches it.
 */
class Wallet_Bridge_Gateway extends WC_Payment_Gateway {

	/**
	 * The gateway's settings (WooCommerce → Settings → Payments → Wallet): enabled, title.
	 */
	public function __construct() {
		$this->id                 = Wallet_Bridge_Checkout::GATEWAY_ID;
		$this->method_title       = __( 'Wallet (Wallet Bridge)', 'wallet-bridge' );
		$this->method_description = __( 'Customers pay from their Wallet Bridge wallet. Connect the bridge under WooCommerce → Settings → Wallet Bridge.', 'wallet-bridge' );
		$this->has_fields         = false;
		$this->supports           = array( 'products' );
		$this->init_form_fields();
		$this->init_settings();
		$this->title   = $this->get_option( 'title' );
		$this->enabled = $this->get_option( 'enabled' );
		add_action( 'woocommerce_update_options_payment_gateways_' . $this->id, array( $this, 'process_admin_options' ) );
	}

	/**
	 * Nothing about money here: the rules are the bridge's console's.
	 */
	public function init_form_fields() {
		$this->form_fields = array(
			'enabled' => array(
				'title'   => __( 'Enable', 'wallet-bridge' ),
				'type'    => 'checkbox',
				'label'   => __( 'Offer the wallet at checkout', 'wallet-bridge' ),
				'default' => 'yes',
			),
			'title'   => array(
				'title'   => __( 'Title', 'wallet-bridge' ),
				'type'    => 'text',
				'default' => __( 'Wallet', 'wallet-bridge' ),
			),
		);
	}

	/**
	 * The logged-in customer's account overview at the bridge, or null (a guest, no wallet, unreachable).
	 */
	public function customer_account() {
		if ( ! is_user_logged_in() || ! Wallet_Bridge_Client::configured() ) {
			return null;
		}
		$account = Wallet_Bridge_Client::account( get_current_user_id() );
		return is_array( $account ) ? $account : null;
	}

	/**
	 * Offered only to a logged-in customer with a wallet, while the bridge answers; never in wp-admin
	 * screens, where no customer is paying.
	 */
	public function is_available() {
		if ( ! parent::is_available() ) {
			return false;
		}
		if ( is_admin() && ! wp_doing_ajax() ) {
			return true; // the order editor lists it for orders paid with it.
		}
		$account = $this->customer_account();
		return null !== $account && ! $account['locked'] && $account['available'] > 0;
	}

	/**
	 * "Wallet (€50.00 available)" at checkout; the plain title on orders (process_payment sets it).
	 */
	public function get_title() {
		$account = ( is_admin() && ! wp_doing_ajax() ) ? null : $this->customer_account();
		if ( null === $account ) {
			return parent::get_title();
		}
		/* translators: 1: the gateway's title, 2: the available balance */
		return sprintf( __( '%1$s (%2$s available)', 'wallet-bridge' ), parent::get_title(), $account['available_formatted'] );
	}

	/**
	 * What the wallet covers of the cart now; the rest is paid afterwards by another method.
	 */
	public function get_description() {
		return esc_html( self::coverage_text( $this->customer_account() ) );
	}

	/**
	 * Plain words for what the wallet pays of the current cart (shown, not decided: the bridge decides).
	 *
	 * @param array|null $account The customer's account overview.
	 */
	public static function coverage_text( $account ) {
		if ( null === $account || ! function_exists( 'WC' ) || null === WC()->cart ) {
			return '';
		}
		$total     = self::cart_total();
		$whole     = self::whole_order_by_wallet( $account, $total );
		$available = (int) $account['available'];
		if ( $available >= $whole && $whole < $total ) {
			/* translators: %s: what the wallet pays, the discount for paying by wallet deducted */
			return sprintf( __( 'Your wallet pays the whole order: %s with the discount for paying by wallet.', 'wallet-bridge' ), Wallet_Bridge_Money::show( $whole ) );
		}
		if ( $available >= $whole ) {
			return __( 'Your wallet pays the whole order.', 'wallet-bridge' );
		}
		if ( empty( $account['rules']['partial_payments'] ) ) {
			/* translators: %s: available balance */
			return sprintf( __( 'Your wallet has %s: not enough for this order.', 'wallet-bridge' ), $account['available_formatted'] );
		}
		return sprintf(
			/* translators: 1: what the wallet pays, 2: what is left to pay */
			__( 'Your wallet pays %1$s of this order; the remaining %2$s is paid afterwards with another payment method.', 'wallet-bridge' ),
			Wallet_Bridge_Money::show( $available ),
			Wallet_Bridge_Money::show( $total - $available )
		);
	}

	/**
	 * The cart's total in minor units.
	 */
	private static function cart_total() {
		return Wallet_Bridge_Money::to_minor( WC()->cart->get_total( 'edit' ), Wallet_Bridge_Money::decimals() );
	}

	/**
	 * What the wallet pays for a whole order: its total less the shop's discount for paying by wallet, as the
	 * bridge counts it (the discount is given only when the wallet pays the order in full).
	 *
	 * @param array $account The customer's account overview.
	 * @param int   $total   The order's total, in minor units.
	 */
	private static function whole_order_by_wallet( $account, $total ) {
		$kind  = $account['rules']['wallet_discount_kind'] ?? 'none';
		$value = (int) ( $account['rules']['wallet_discount_value'] ?? 0 );
		if ( 'percent' === $kind ) {
			return $total - intdiv( $total * $value, 10000 ); // basis points; the discount rounded down.
		}
		return 'fixed' === $kind ? $total - min( $total, $value ) : $total;
	}

	/**
	 * Classic checkout: refuse a short wallet before the order is created. (The block checkout reserves
	 * when the order is placed: Wallet_Bridge_Checkout::reserve_before_placing.)
	 */
	public function validate_fields() {
		if ( WC()->is_rest_api_request() ) {
			return true;
		}
		$account = $this->customer_account();
		if ( null === $account ) {
			wc_add_notice( __( 'Your wallet cannot be used right now: please choose another payment method.', 'wallet-bridge' ), 'error' );
			return false;
		}
		$whole = self::whole_order_by_wallet( $account, self::cart_total() );
		if ( $account['available'] < $whole && empty( $account['rules']['partial_payments'] ) ) {
			wc_add_notice( self::coverage_text( $account ) . ' ' . __( 'Please choose another payment method.', 'wallet-bridge' ), 'error' );
			return false;
		}
		return true;
	}

	/**
	 * Reserve the order's amount (again, for the block checkout: the bridge answers with the same
	 * reservation), then leave the order on hold until the bridge captures and marks it paid; or, when the
	 * wallet covers part of it, pending: the bridge adds its "Paid from wallet" line and the customer pays
	 * the rest (WooCommerce cancels it when nobody does, and the bridge gives the wallet part back).
	 *
	 * @param int $order_id The order.
	 */
	public function process_payment( $order_id ) {
		$order    = wc_get_order( $order_id );
		$reserved = Wallet_Bridge_Checkout::reserve( $order );
		if ( is_wp_error( $reserved ) ) {
			wc_add_notice( $reserved->get_error_message(), 'error' );
			return array( 'result' => 'failure' );
		}
		$order->set_payment_method_title( parent::get_title() );
		$note = sprintf(
			/* translators: %s: amount */
			__( 'Wallet Bridge reserved %s in the customer\'s wallet; it is taken when the bridge receives this order.', 'wallet-bridge' ),
			Wallet_Bridge_Money::show( (int) $reserved['amount'] )
		);
		if ( (int) $reserved['left_to_pay'] > 0 ) {
			$order->add_order_note( $note );
			$order->save();
		} else {
			$order->update_status( 'on-hold', $note );
		}
		WC()->cart->empty_cart();
		return array(
			'result'   => 'success',
			'redirect' => $this->get_return_url( $order ),
		);
	}
}
