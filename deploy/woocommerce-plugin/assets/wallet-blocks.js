/* The Wallet Bridge gateway in the block checkout: a label and a line of text from the server, nothing else. */
( function () {
	const settings = window.wc.wcSettings.getSetting( 'wallet_data', {} );
	const { createElement } = window.wp.element;
	const { decodeEntities } = window.wp.htmlEntities;
	const title = decodeEntities( settings.title || 'Wallet' );
	const Content = () => createElement( 'p', null, decodeEntities( settings.description || '' ) );
	window.wc.wcBlocksRegistry.registerPaymentMethod( {
		name: 'wallet',
		label: createElement( 'span', null, title ),
		ariaLabel: title,
		content: createElement( Content ),
		edit: createElement( Content ),
		canMakePayment: () => true,
		supports: { features: settings.supports || [ 'products' ] },
	} );
} )();
