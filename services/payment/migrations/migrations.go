// Package migrations holds the payment service's schema as goose migrations
// (its version table is goose_payment_version; the outbox and inbox tables
// come from sqlstore.MigrateMessaging).
package migrations

import "embed"

// FS holds the NNNNN_*.sql files at its root.
//
//go:embed *.sql
var FS embed.FS

// VersionTable records which of them are applied.
const VersionTable = "goose_payment_version"
