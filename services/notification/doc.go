// Package notification is the notification service: the saga log by order and
// customer-facing messages by customer (Cassandra). The saga itself lands with issue #4.
package notification
