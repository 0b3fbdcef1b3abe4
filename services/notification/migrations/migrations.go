// Package migrations holds the notification keyspace's schema as versioned
// CQL files (NNNNN_name.cql), applied in order at start-up and recorded in
// the keyspace's schema_migrations table. Every statement must be idempotent
// (IF NOT EXISTS): instances starting together may both run a migration
// before either records it.
package migrations

import "embed"

// FS holds the *.cql files.
//
//go:embed *.cql
var FS embed.FS
