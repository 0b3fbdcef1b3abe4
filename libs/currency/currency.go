// Package currency knows which ISO 4217 codes a shop may charge in: the
// active currencies of ISO 4217's list one. A pattern like ^[A-Z]{3}$ lets
// through codes no payment path can handle (XXX "no currency", XTS
// "testing", unassigned ones like ABC), which then failed far from the
// request — as "out of stock" — instead of as the bad field they are.
package currency

// active holds the active ISO 4217 currency codes (list one, as amended to
// 2025: XCG replaced ANG, ZWG replaced ZWL, SLE replaced SLL). Left out on
// purpose: fund codes (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI, UYW),
// precious metals and units of account (XAG, XAU, XBA–XBD, XDR, XPD, XPT,
// XSU, XUA), and the codes for testing and for "no currency" (XTS, XXX):
// none is a price a customer pays.
var active = map[string]struct{}{}

func init() {
	for _, code := range []string{
		"AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN",
		"BAM", "BBD", "BDT", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
		"CAD", "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK",
		"DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR",
		"FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD",
		"HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK",
		"JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT",
		"LAK", "LBP", "LKR", "LRD", "LSL", "LYD",
		"MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN",
		"NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR",
		"PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR",
		"RON", "RSD", "RUB", "RWF",
		"SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL",
		"THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS",
		"UAH", "UGX", "USD", "UYU", "UZS", "VED", "VES", "VND", "VUV", "WST",
		"XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
	} {
		active[code] = struct{}{}
	}
}

// Valid reports whether code is an active ISO 4217 currency a price may be
// in (upper case, as the standard writes it).
func Valid(code string) bool {
	_, ok := active[code]
	return ok
}
