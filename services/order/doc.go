// Package order is the order service: it owns orders, their saga status machine
// and step history (MySQL), and emits ORDER_CREATED, ORDER_COMPLETED and
// ORDER_CANCELLED. The saga itself lands with issue #4; this module holds its place
// in the workspace so build, vet and test already reach it.
package order
