// Package shipping is the shipping service: one shipment document per order
// (MongoDB) with its own embedded outbox. The saga itself lands with issue #4.
package shipping
