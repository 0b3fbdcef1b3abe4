// Package payment is the payment service: charges and refunds (MySQL) through a
// Gateway with the order id as idempotency key. The saga itself lands with issue #4.
package payment
