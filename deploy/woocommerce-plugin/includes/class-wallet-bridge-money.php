<?php
/**
 * Money as the bridge counts it: integer minor units, never floats.
 *
 * @package WalletBridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Conversions between WooCommerce's decimal strings and minor units.
 */
class Wallet_Bridge_Money {

	/**
	 * "19.99" (or 19.99) in minor units of a currency with $decimals decimals: 1999.
	 *
	 * @param string|float $amount   A WooCommerce amount.
	 * @param int          $decimals The currency's decimals.
	 */
	public static function to_minor( $amount, $decimals ) {
		$text                = wc_format_decimal( $amount, $decimals, false );
		$negative            = str_starts_with( $text, '-' );
		list( $whole, $part ) = array_pad( explode( '.', ltrim( $text, '-' ) ), 2, '' );
		$minor               = (int) $whole * ( 10 ** $decimals ) + (int) str_pad( substr( $part, 0, $decimals ), $decimals, '0' );
		return $negative ? -$minor : $minor;
	}

	/**
	 * Minor units as a decimal string: 1999 → "19.99".
	 *
	 * @param int $minor    Minor units.
	 * @param int $decimals The currency's decimals.
	 */
	public static function to_decimal( $minor, $decimals ) {
		if ( 0 === $decimals ) {
			return (string) $minor;
		}
		$sign  = $minor < 0 ? '-' : '';
		$units = (string) abs( $minor );
		$units = str_pad( $units, $decimals + 1, '0', STR_PAD_LEFT );
		return $sign . substr( $units, 0, -$decimals ) . '.' . substr( $units, -$decimals );
	}

	/**
	 * Minor units shown as the shop shows prices.
	 *
	 * @param int $minor Minor units of the shop's currency.
	 */
	public static function show( $minor ) {
		return wp_strip_all_tags( wc_price( self::to_decimal( $minor, wc_get_price_decimals() ) ) );
	}
}
