<?php
/**
 * Reservations for orders: asked of the bridge when an order is placed, released when it is not placed after all,
 * is paid another way, or is cancelled.
 * What the wallet covers is the bridge's decision; the plugin only shows it.
 *
 * @package WalletBridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * The checkout's calls to the bridge, for the classic checkout (through the gateway) and the block checkout.
 */
class Wallet_Bridge_Checkout {

	const GATEWAY_ID = 'wallet';

	/**
	 * Order meta: the bridge reserved for this order (and nothing released it since).
	 */
	const RESERVED_META = '_wallet_bridge_reserved';

	/**
	 * Orders the current Store API checkout request reserved for.
	 *
	 * @var WC_Order[]
	 */
	private static $reserved_now = array();

	/**
	 * Hook into the block checkout (Store API) and the order's life.
	 */
	public static function register() {
		add_action( 'woocommerce_store_api_checkout_update_order_from_request', array( self::class, 'reserve_before_placing' ), 10, 2 );
		add_filter( 'rest_request_after_callbacks', array( self::class, 'release_if_not_placed' ) );
		add_action( 'woocommerce_order_status_cancelled', array( self::class, 'release' ) );
		add_action( 'woocommerce_order_status_failed', array( self::class, 'release' ) );
	}

	/**
	 * Block checkout: reserve when the order is placed (POST) while it is still a draft, so that a refusal leaves
	 * no order behind (the Store API sets the order pending before it calls the gateway). The draft updates the
	 * block checkout sends when a payment method is picked (PUT) reserve nothing; a draft no longer paid by the
	 * wallet gives back what an earlier checkout of it reserved.
	 *
	 * @param WC_Order        $order   The draft order, its payment method set from the request.
	 * @param WP_REST_Request $request The checkout request.
	 * @throws \Automattic\WooCommerce\StoreApi\Exceptions\RouteException When the wallet cannot pay.
	 */
	public static function reserve_before_placing( $order, $request ) {
		if ( self::GATEWAY_ID !== $order->get_payment_method() || ! $order->needs_payment() ) {
			if ( $order->get_meta( self::RESERVED_META ) ) {
				self::release_reservation( $order );
			}
			return;
		}
		if ( 'POST' !== $request->get_method() ) {
			return;
		}
		$reserved = self::reserve( $order );
		if ( is_wp_error( $reserved ) ) {
			throw new \Automattic\WooCommerce\StoreApi\Exceptions\RouteException( 'wallet_bridge_refused', esc_html( $reserved->get_error_message() ), 400 );
		}
		self::$reserved_now[] = $order;
	}

	/**
	 * The Store API's later checks (order validation, coupon and stock holds, the payment) can still refuse the
	 * checkout after it reserved: no order was placed, so the reservation goes back now, not when it expires.
	 *
	 * @param WP_REST_Response|WP_Error|mixed $response The route's answer, returned unchanged.
	 * @return WP_REST_Response|WP_Error|mixed
	 */
	public static function release_if_not_placed( $response ) {
		$refused = is_wp_error( $response ) || ( $response instanceof WP_REST_Response && $response->is_error() );
		foreach ( $refused ? self::$reserved_now : array() as $order ) {
			self::release_reservation( $order );
		}
		self::$reserved_now = array();
		return $response;
	}

	/**
	 * Ask the bridge to reserve the order's total. Returns the reservation (amount, left_to_pay), or WP_Error
	 * whose message the customer can read.
	 *
	 * @param WC_Order $order The order being paid.
	 * @return array|WP_Error
	 */
	public static function reserve( $order ) {
		$customer_id = $order->get_customer_id() ? $order->get_customer_id() : get_current_user_id();
		if ( ! $customer_id ) {
			return new WP_Error( 'wallet_bridge_guest', __( 'Please log in to pay with your wallet.', 'wallet-bridge' ) );
		}
		$total  = Wallet_Bridge_Money::to_minor( $order->get_total( 'edit' ), Wallet_Bridge_Money::decimals( $order->get_currency() ) );
		$answer = Wallet_Bridge_Client::request(
			'POST',
			'/orders/' . rawurlencode( (string) $order->get_id() ) . '/reservation',
			array(
				'customer_id' => (string) $customer_id,
				'amount'      => $total,
			),
			// The bridge keeps one reservation per order; the key tells a retry from a changed total.
			'wc-order-' . $order->get_id() . '-' . $total
		);
		if ( is_wp_error( $answer ) ) {
			return $answer;
		}
		if ( 201 !== $answer['status'] ) {
			return new WP_Error( 'wallet_bridge_refused', self::refusal_for_customer( $answer ) );
		}
		$order->update_meta_data( self::RESERVED_META, 'yes' );
		$order->save_meta_data();
		return $answer['body'];
	}

	/**
	 * Plain words for a refused reservation.
	 *
	 * @param array $answer The bridge's 4xx answer.
	 */
	private static function refusal_for_customer( $answer ) {
		$code = $answer['body']['error']['code'] ?? '';
		if ( 'insufficient_funds' === $code ) {
			/* translators: %s: the bridge's reason, with the available balance */
			return sprintf( __( 'Your wallet cannot pay for this order: %s. Please choose another payment method.', 'wallet-bridge' ), Wallet_Bridge_Client::refusal( $answer ) );
		}
		if ( 'wallet_locked' === $code ) {
			return __( 'Your wallet is locked: please contact the shop or choose another payment method.', 'wallet-bridge' );
		}
		if ( 404 === $answer['status'] ) {
			return __( 'You have no wallet in this shop yet: please choose another payment method.', 'wallet-bridge' );
		}
		return Wallet_Bridge_Client::refusal( $answer );
	}

	/**
	 * A wallet order cancelled or failed: its reservation goes back now (the bridge would do it on the
	 * order's webhook too, later when webhooks are queued).
	 *
	 * @param int $order_id The order.
	 */
	public static function release( $order_id ) {
		$order = wc_get_order( $order_id );
		if ( $order && self::GATEWAY_ID === $order->get_payment_method() ) {
			self::release_reservation( $order );
		}
	}

	/**
	 * Ask the bridge to give back what it reserves for the order; forget the reservation once it answered.
	 *
	 * @param WC_Order $order The order.
	 */
	private static function release_reservation( $order ) {
		$answer = Wallet_Bridge_Client::request( 'DELETE', '/orders/' . rawurlencode( (string) $order->get_id() ) . '/reservation' );
		if ( ! is_wp_error( $answer ) && $order->get_meta( self::RESERVED_META ) ) {
			$order->delete_meta_data( self::RESERVED_META );
			$order->save_meta_data();
		}
	}
}
