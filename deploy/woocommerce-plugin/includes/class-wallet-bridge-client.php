<?php
/**
 * The bridge's HTTP API, called from the server only: the API key never reaches a browser or a log.
 *
 * @package WalletBridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Calls to /api/v1 of the configured bridge, and what the admin sees when it cannot be reached.
 */
class Wallet_Bridge_Client {

	const URL_OPTION     = 'wallet_bridge_url';
	const KEY_OPTION     = 'wallet_bridge_api_key';
	const FAILURE_OPTION = 'wallet_bridge_unreachable';
	const TIMEOUT        = 5; // seconds: a checkout waits for this at most when the bridge hangs.

	/**
	 * Answers already read in this PHP request, by path (a page asks for the same wallet several times).
	 *
	 * @var array<string, array>
	 */
	private static $read = array();

	/**
	 * Whether a bridge URL and key are set.
	 */
	public static function configured() {
		return '' !== (string) get_option( self::URL_OPTION, '' ) && '' !== (string) get_option( self::KEY_OPTION, '' );
	}

	/**
	 * One API call. Returns array( 'status' => int, 'body' => array ), or WP_Error when the bridge could not be
	 * reached or answered 5xx (recorded for the admin notice).
	 *
	 * @param string      $method          GET, POST or DELETE.
	 * @param string      $path            Under /api/v1, starting with a slash.
	 * @param array|null  $body            JSON body.
	 * @param string|null $idempotency_key For writes.
	 * @return array|WP_Error
	 */
	public static function request( $method, $path, $body = null, $idempotency_key = null ) {
		if ( ! self::configured() ) {
			return new WP_Error( 'wallet_bridge_not_configured', __( 'Wallet Bridge is not configured.', 'wallet-bridge' ) );
		}
		if ( 'GET' === $method && isset( self::$read[ $path ] ) ) {
			return self::$read[ $path ];
		}
		$headers = array(
			'Authorization' => 'Bearer ' . get_option( self::KEY_OPTION ),
			'Accept'        => 'application/json',
		);
		$args    = array(
			'method'      => $method,
			'timeout'     => self::TIMEOUT,
			'redirection' => 0,
			'headers'     => $headers,
		);
		if ( null !== $body ) {
			$args['headers']['Content-Type'] = 'application/json';
			$args['body']                    = wp_json_encode( (object) $body ); // {} even when empty, never [].
		}
		if ( null !== $idempotency_key ) {
			$args['headers']['Idempotency-Key'] = $idempotency_key;
		}
		$url    = untrailingslashit( (string) get_option( self::URL_OPTION ) ) . '/api/v1' . $path;
		$answer = self::answer( wp_remote_request( $url, $args ) );
		if ( 'GET' === $method ) {
			self::$read[ $path ] = $answer; // a failure too: a page asks once, not once per gateway check.
		}
		return $answer;
	}

	/**
	 * The bridge's answer, or WP_Error when there was none (or a 5xx).
	 *
	 * @param array|WP_Error $response What wp_remote_request returned.
	 * @return array|WP_Error
	 */
	private static function answer( $response ) {
		if ( is_wp_error( $response ) ) {
			return self::unreachable( $response->get_error_message() );
		}
		$status = (int) wp_remote_retrieve_response_code( $response );
		if ( $status >= 500 ) {
			return self::unreachable( sprintf( 'HTTP %d', $status ) );
		}
		if ( false !== get_option( self::FAILURE_OPTION ) ) {
			delete_option( self::FAILURE_OPTION ); // the bridge answers again: the admin notice goes.
		}
		$decoded = json_decode( wp_remote_retrieve_body( $response ), true );
		return array(
			'status' => $status,
			'body'   => is_array( $decoded ) ? $decoded : array(),
		);
	}

	/**
	 * Remember the failure for the admin notice (the reason only: never the key or a customer's data).
	 *
	 * @param string $why What went wrong.
	 * @return WP_Error
	 */
	private static function unreachable( $why ) {
		update_option(
			self::FAILURE_OPTION,
			array(
				'at'  => time(),
				'why' => substr( $why, 0, 200 ),
			),
			false
		);
		return new WP_Error( 'wallet_bridge_unreachable', __( 'The wallet cannot be reached right now.', 'wallet-bridge' ) );
	}

	/**
	 * The customer's account overview (wallet, latest movements, the shop's rules); null when the customer
	 * has no wallet yet, WP_Error when the bridge cannot tell.
	 *
	 * @param int $customer_id WordPress user id (WooCommerce's customer id).
	 * @return array|null|WP_Error
	 */
	public static function account( $customer_id ) {
		$answer = self::request( 'GET', '/customers/' . rawurlencode( (string) $customer_id ) . '/account' );
		if ( is_wp_error( $answer ) ) {
			return $answer;
		}
		return 200 === $answer['status'] ? $answer['body'] : null;
	}

	/**
	 * The bridge's message of a refused call, in plain words.
	 *
	 * @param array $answer A 4xx answer of request().
	 */
	public static function refusal( $answer ) {
		$message = $answer['body']['error']['message'] ?? '';
		return '' !== $message ? $message : __( 'The wallet refused the request.', 'wallet-bridge' );
	}

	/**
	 * A notice for shop managers while the last call to the bridge failed.
	 */
	public static function admin_notice() {
		if ( ! current_user_can( 'manage_woocommerce' ) ) {
			return;
		}
		$result = get_transient( 'wallet_bridge_test_result' );
		if ( is_array( $result ) ) {
			delete_transient( 'wallet_bridge_test_result' );
			printf(
				'<div class="notice notice-%1$s is-dismissible"><p>%2$s</p></div>',
				esc_attr( $result['ok'] ? 'success' : 'error' ),
				esc_html( $result['message'] )
			);
		}
		$failure = get_option( self::FAILURE_OPTION );
		if ( is_array( $failure ) ) {
			printf(
				'<div class="notice notice-warning"><p>%s</p></div>',
				esc_html(
					sprintf(
						/* translators: 1: when, 2: the reason */
						__( 'Wallet Bridge could not be reached %1$s ago (%2$s): customers cannot pay with or see their wallet until it answers again.', 'wallet-bridge' ),
						human_time_diff( (int) $failure['at'] ),
						$failure['why']
					)
				)
			);
		}
	}

	/**
	 * The settings page's "Test connection" (admin-post.php, nonce and capability checked).
	 */
	public static function test_connection() {
		if ( ! current_user_can( 'manage_woocommerce' ) ) {
			wp_die( esc_html__( 'You are not allowed to do this.', 'wallet-bridge' ), 403 );
		}
		check_admin_referer( 'wallet_bridge_test' );
		$answer = self::request( 'GET', '/shop' );
		if ( is_wp_error( $answer ) ) {
			$result = array(
				'ok'      => false,
				'message' => $answer->get_error_message(),
			);
		} elseif ( 200 === $answer['status'] ) {
			$result = array(
				'ok'      => true,
				/* translators: %s: the shop's name in the bridge */
				'message' => sprintf( __( 'Connected to Wallet Bridge: shop "%s".', 'wallet-bridge' ), $answer['body']['name'] ?? '' ),
			);
		} else {
			$result = array(
				'ok'      => false,
				/* translators: %d: HTTP status */
				'message' => sprintf( __( 'Wallet Bridge refused the API key (HTTP %d).', 'wallet-bridge' ), $answer['status'] ),
			);
		}
		set_transient( 'wallet_bridge_test_result', $result, 60 );
		wp_safe_redirect( admin_url( 'admin.php?page=wc-settings&tab=wallet_bridge' ) );
		exit;
	}
}
