// Package inventory is the inventory service: products, stock and reservations
// (MySQL); it reserves all lines of an order or none and compensates on failure.
// The saga itself lands with issue #4.
package inventory
