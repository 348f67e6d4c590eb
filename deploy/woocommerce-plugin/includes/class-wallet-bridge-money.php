<?php
/**
 * Money as the bridge counts it: integer minor units, never floats.
 *
 * @package WalletBridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Conversions between WooCommerce's decimal strings and minor units. A currency's minor units are its ISO 4217
 * exponent, as the bridge counts them: never WooCommerce's "Number of decimals", which only says how prices are shown.
 */
class Wallet_Bridge_Money {

	/**
	 * The exponents other than 2, as the bridge's (bridge/money.py): ISO 4217's, and CLDR's digits for the codes
	 * ISO has withdrawn (ADP, BYR, ESP, ITL, LUF, MGF, MRO, SLL, STD, TMM, TRL, ZMK, ZWD).
	 */
	const EXPONENTS = array(
		0 => 'ADP BIF BYR CLP DJF ESP GNF ISK ITL JPY KMF KRW LUF MGF MRO PYG RWF SLL STD TMM TRL UGX UYI VND VUV XAF XOF XPF ZMK ZWD',
		3 => 'BHD IQD JOD KWD LYD OMR TND',
		4 => 'CLF UYW',
	);

	/**
	 * The currency's decimals in minor units (EUR 2, JPY 0, KWD 3).
	 *
	 * @param string $currency ISO 4217 code; the shop's currency when empty.
	 */
	public static function decimals( $currency = '' ) {
		$code = strtoupper( '' !== (string) $currency ? (string) $currency : get_woocommerce_currency() );
		foreach ( self::EXPONENTS as $exponent => $codes ) {
			if ( in_array( $code, explode( ' ', $codes ), true ) ) {
				return $exponent;
			}
		}
		return 2;
	}

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
	 * An amount a customer typed ("12", "12.30", or with the shop's decimal separator) in minor units; null when it
	 * is no such amount or has more decimals than the currency (rounding "12.345" would top up what was not typed).
	 *
	 * @param string $typed    What was typed.
	 * @param int    $decimals The currency's decimals.
	 */
	public static function typed_minor( $typed, $decimals ) {
		$text    = str_replace( wc_get_price_decimal_separator(), '.', trim( (string) $typed ) );
		$pattern = 0 === $decimals ? '/^\d{1,12}$/' : '/^\d{1,12}(\.\d{1,' . $decimals . '})?$/';
		return preg_match( $pattern, $text ) ? self::to_minor( $text, $decimals ) : null;
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
	 * Minor units shown as the shop shows prices (rounded to its "Number of decimals" for display only).
	 *
	 * @param int $minor Minor units of the shop's currency.
	 */
	public static function show( $minor ) {
		return wp_strip_all_tags( wc_price( self::to_decimal( $minor, self::decimals() ) ) );
	}
}
