<?php
/**
 * My Account → Wallet: what the bridge says of the logged-in customer's wallet, fetched server-side, and the
 * forms for a top-up and a points conversion (nonce-checked, sent to the bridge by the server).
 *
 * @package WalletBridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * The account tab.
 */
class Wallet_Bridge_Account {

	const ENDPOINT = 'wallet';

	/**
	 * Hook the tab into My Account.
	 */
	public static function register() {
		add_filter( 'woocommerce_get_query_vars', array( self::class, 'query_vars' ) );
		add_filter( 'woocommerce_account_menu_items', array( self::class, 'menu_items' ) );
		add_action( 'woocommerce_account_' . self::ENDPOINT . '_endpoint', array( self::class, 'render' ) );
		add_action( 'template_redirect', array( self::class, 'handle_form' ) );
		add_action( 'init', array( self::class, 'flush_rules_once' ), 99 );
	}

	/**
	 * WooCommerce registers the endpoint's rewrite rule with its own.
	 *
	 * @param array $vars WooCommerce's query vars.
	 */
	public static function query_vars( $vars ) {
		$vars[ self::ENDPOINT ] = self::ENDPOINT;
		return $vars;
	}

	/**
	 * The new endpoint's rewrite rule exists once rules are rebuilt: once per plugin version.
	 */
	public static function flush_rules_once() {
		if ( get_option( 'wallet_bridge_rewrite_version' ) !== WALLET_BRIDGE_VERSION ) {
			flush_rewrite_rules( false );
			update_option( 'wallet_bridge_rewrite_version', WALLET_BRIDGE_VERSION );
		}
	}

	/**
	 * "Wallet" before "Log out".
	 *
	 * @param array $items Menu items.
	 */
	public static function menu_items( $items ) {
		$logout = isset( $items['customer-logout'] ) ? array( 'customer-logout' => $items['customer-logout'] ) : array();
		unset( $items['customer-logout'] );
		return $items + array( self::ENDPOINT => __( 'Wallet', 'wallet-bridge' ) ) + $logout;
	}

	/**
	 * The tab's content.
	 */
	public static function render() {
		$customer_id = get_current_user_id();
		$account     = Wallet_Bridge_Client::account( $customer_id );
		echo '<div class="wallet-bridge-account">';
		if ( is_wp_error( $account ) ) {
			echo '<p class="wallet-bridge-unavailable">' . esc_html__( 'Your wallet cannot be shown right now. Please try again later.', 'wallet-bridge' ) . '</p></div>';
			return;
		}
		if ( null === $account ) {
			echo '<p>' . esc_html__( 'You have no wallet in this shop yet. Refunds, top-ups and rewards will appear here.', 'wallet-bridge' ) . '</p></div>';
			return;
		}
		self::render_balances( $account );
		self::render_movements( $account['movements'] );
		self::render_forms( $account );
		self::render_statement_link( $customer_id );
		echo '</div>';
	}

	/**
	 * Balance, held, available, points, what is held for and credit about to expire.
	 *
	 * @param array $account The account overview.
	 */
	private static function render_balances( $account ) {
		$held = (int) $account['balance'] - (int) $account['available']; // the bridge's open holds.
		echo '<table class="woocommerce-table shop_table wallet-bridge-balances"><tbody>';
		self::row( __( 'Balance', 'wallet-bridge' ), $account['balance_formatted'], 'wallet-bridge-balance' );
		if ( 0 !== $held ) {
			self::row( __( 'Held', 'wallet-bridge' ), Wallet_Bridge_Money::show( $held ), 'wallet-bridge-held' );
		}
		self::row( __( 'Available to spend', 'wallet-bridge' ), $account['available_formatted'], 'wallet-bridge-available' );
		self::row( __( 'Points', 'wallet-bridge' ), number_format_i18n( (int) $account['points'] ), 'wallet-bridge-points' );
		echo '</tbody></table>';
		self::render_holds( $account['open_holds'] ?? array() );
		if ( $account['locked'] ) {
			echo '<p class="woocommerce-info">' . esc_html__( 'Your wallet is locked: please contact the shop.', 'wallet-bridge' ) . '</p>';
		}
		foreach ( $account['expiring'] as $lot ) {
			printf(
				'<p class="wallet-bridge-expiring">%s</p>',
				esc_html(
					sprintf(
						/* translators: 1: amount, 2: date */
						__( '%1$s of your credit expires on %2$s.', 'wallet-bridge' ),
						$lot['amount_formatted'],
						wp_date( get_option( 'date_format' ), strtotime( $lot['expires_at'] ) )
					)
				)
			);
		}
	}

	/**
	 * What each open hold keeps aside, as the statement page says it: "€7.00: Reserved for a gift card".
	 *
	 * @param array $holds The wallet's open holds.
	 */
	private static function render_holds( $holds ) {
		if ( empty( $holds ) ) {
			return;
		}
		echo '<p>' . esc_html__( 'Held, not available to spend:', 'wallet-bridge' ) . '</p><ul class="wallet-bridge-holds">';
		foreach ( $holds as $hold ) {
			$text = sprintf(
				/* translators: 1: amount, 2: what it is held for */
				__( '%1$s: %2$s', 'wallet-bridge' ),
				Wallet_Bridge_Money::show( (int) $hold['amount'] ),
				$hold['reason']
			);
			echo '<li>' . esc_html( $text ) . '</li>';
		}
		echo '</ul>';
	}

	/**
	 * One labelled value.
	 *
	 * @param string $label Label.
	 * @param string $value Value.
	 * @param string $css   Class of the value.
	 */
	private static function row( $label, $value, $css ) {
		printf( '<tr><th>%1$s</th><td class="%2$s">%3$s</td></tr>', esc_html( $label ), esc_attr( $css ), esc_html( $value ) );
	}

	/**
	 * The latest movements with their reasons and orders.
	 *
	 * @param array $movements Statement lines, newest first.
	 */
	private static function render_movements( $movements ) {
		echo '<h3>' . esc_html__( 'Latest movements', 'wallet-bridge' ) . '</h3>';
		if ( empty( $movements ) ) {
			echo '<p>' . esc_html__( 'No movements yet.', 'wallet-bridge' ) . '</p>';
			return;
		}
		echo '<table class="woocommerce-table shop_table wallet-bridge-movements"><thead><tr>';
		foreach ( array( __( 'Date', 'wallet-bridge' ), __( 'What', 'wallet-bridge' ), __( 'Order', 'wallet-bridge' ), __( 'Amount', 'wallet-bridge' ) ) as $heading ) {
			echo '<th>' . esc_html( $heading ) . '</th>';
		}
		echo '</tr></thead><tbody>';
		foreach ( $movements as $line ) {
			$amount = 'points' === $line['unit']
				/* translators: %s: number of points */
				? sprintf( __( '%s points', 'wallet-bridge' ), number_format_i18n( (int) $line['amount'] ) )
				: $line['amount_formatted'];
			printf(
				'<tr><td>%1$s</td><td>%2$s</td><td>%3$s</td><td>%4$s</td></tr>',
				esc_html( wp_date( get_option( 'date_format' ), strtotime( $line['created_at'] ) ) ),
				esc_html( $line['reason'] ),
				self::order_link( $line['order_id'] ), // phpcs:ignore WordPress.Security.EscapeOutput -- escaped inside.
				esc_html( $amount )
			);
		}
		echo '</tbody></table>';
	}

	/**
	 * The order as a link to it when it is this customer's, else its number.
	 *
	 * @param string|null $order_id The shop's order id.
	 */
	private static function order_link( $order_id ) {
		if ( null === $order_id ) {
			return '';
		}
		$order = wc_get_order( (int) $order_id );
		if ( $order && (int) $order->get_customer_id() === get_current_user_id() ) {
			return sprintf( '<a href="%1$s">#%2$s</a>', esc_url( $order->get_view_order_url() ), esc_html( $order->get_order_number() ) );
		}
		return esc_html( '#' . $order_id );
	}

	/**
	 * Top-up (within the shop's range) and points conversion.
	 *
	 * @param array $account The account overview.
	 */
	private static function render_forms( $account ) {
		$rules    = $account['rules'];
		$decimals = Wallet_Bridge_Money::decimals();
		echo '<h3>' . esc_html__( 'Top up', 'wallet-bridge' ) . '</h3>';
		echo '<form method="post" class="wallet-bridge-topup">';
		self::form_fields( 'topup' );
		printf(
			'<p><label for="wallet_bridge_amount">%1$s</label> <input type="number" id="wallet_bridge_amount" name="wallet_bridge_amount" min="%2$s" max="%3$s" step="%4$s" required> <button type="submit" class="button">%5$s</button></p>',
			esc_html(
				sprintf(
					/* translators: 1: minimum, 2: maximum */
					__( 'Amount (%1$s to %2$s)', 'wallet-bridge' ),
					Wallet_Bridge_Money::show( (int) $rules['topup_minimum'] ),
					Wallet_Bridge_Money::show( (int) $rules['topup_maximum'] )
				)
			),
			esc_attr( Wallet_Bridge_Money::to_decimal( (int) $rules['topup_minimum'], $decimals ) ),
			esc_attr( Wallet_Bridge_Money::to_decimal( (int) $rules['topup_maximum'], $decimals ) ),
			esc_attr( Wallet_Bridge_Money::to_decimal( 1, $decimals ) ),
			esc_html__( 'Top up', 'wallet-bridge' )
		);
		echo '</form>';
		if ( $account['points'] > 0 && $rules['points_conversion_value'] > 0 && $account['points'] >= $rules['points_conversion_minimum'] ) {
			echo '<form method="post" class="wallet-bridge-convert">';
			self::form_fields( 'convert' );
			printf(
				'<p>%1$s <button type="submit" class="button">%2$s</button></p>',
				esc_html(
					sprintf(
						/* translators: 1: points, 2: value */
						__( '%1$s points are worth %2$s.', 'wallet-bridge' ),
						number_format_i18n( (int) $rules['points_conversion_points'] ),
						Wallet_Bridge_Money::show( (int) $rules['points_conversion_value'] )
					)
				),
				esc_html__( 'Convert my points', 'wallet-bridge' )
			);
			echo '</form>';
		}
	}

	/**
	 * The action, its nonce, and a key that makes a double submit one request at the bridge.
	 *
	 * @param string $action topup or convert.
	 */
	private static function form_fields( $action ) {
		printf( '<input type="hidden" name="wallet_bridge_action" value="%s">', esc_attr( $action ) );
		printf( '<input type="hidden" name="wallet_bridge_key" value="%s">', esc_attr( wp_generate_uuid4() ) );
		wp_nonce_field( 'wallet_bridge_' . $action, 'wallet_bridge_nonce' );
	}

	/**
	 * A link to the full statement (a signed link the bridge makes for this customer, valid for an hour).
	 *
	 * @param int $customer_id The customer.
	 */
	private static function render_statement_link( $customer_id ) {
		$answer = Wallet_Bridge_Client::request( 'POST', '/customers/' . rawurlencode( (string) $customer_id ) . '/statement-link' );
		if ( ! is_wp_error( $answer ) && 201 === $answer['status'] ) {
			printf( '<p><a class="wallet-bridge-statement" href="%1$s">%2$s</a></p>', esc_url( $answer['body']['url'] ), esc_html__( 'See the full statement', 'wallet-bridge' ) );
		}
	}

	/**
	 * The tab's forms, posted to the tab itself.
	 */
	public static function handle_form() {
		if ( ! isset( $_POST['wallet_bridge_action'], $_POST['wallet_bridge_nonce'], $_POST['wallet_bridge_key'] ) || ! is_user_logged_in() ) {
			return;
		}
		$action = sanitize_key( wp_unslash( $_POST['wallet_bridge_action'] ) );
		if ( ! in_array( $action, array( 'topup', 'convert' ), true ) || ! wp_verify_nonce( sanitize_text_field( wp_unslash( $_POST['wallet_bridge_nonce'] ) ), 'wallet_bridge_' . $action ) ) {
			return;
		}
		$key    = 'wc-' . $action . '-' . get_current_user_id() . '-' . sanitize_key( wp_unslash( $_POST['wallet_bridge_key'] ) );
		$path   = '/customers/' . rawurlencode( (string) get_current_user_id() );
		$back   = wc_get_account_endpoint_url( self::ENDPOINT );
		$amount = isset( $_POST['wallet_bridge_amount'] ) ? sanitize_text_field( wp_unslash( $_POST['wallet_bridge_amount'] ) ) : '';
		$minor  = Wallet_Bridge_Money::typed_minor( $amount, Wallet_Bridge_Money::decimals() );
		if ( 'topup' === $action && null === $minor ) {
			/* translators: %d: the currency's number of decimals */
			$answer = new WP_Error( 'wallet_bridge_amount', sprintf( __( 'Enter an amount with at most %d decimals.', 'wallet-bridge' ), Wallet_Bridge_Money::decimals() ) );
		} elseif ( 'topup' === $action ) {
			$answer = Wallet_Bridge_Client::request( 'POST', $path . '/topups', array( 'amount' => $minor ), $key );
		} else {
			$answer = Wallet_Bridge_Client::request( 'POST', $path . '/points/conversions', array(), $key );
		}
		if ( is_wp_error( $answer ) ) {
			wc_add_notice( $answer->get_error_message(), 'error' );
		} elseif ( 201 !== $answer['status'] ) {
			wc_add_notice( Wallet_Bridge_Client::refusal( $answer ), 'error' );
		} elseif ( 'topup' === $action ) {
			wp_safe_redirect( $answer['body']['payment_url'] );
			exit;
		} else {
			wc_add_notice( __( 'Your points were converted to wallet money.', 'wallet-bridge' ) );
		}
		wp_safe_redirect( $back );
		exit;
	}
}
