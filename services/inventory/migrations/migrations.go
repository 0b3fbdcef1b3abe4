// Package migrations holds the inventory schema as goose migrations.
package migrations

import (
	"context"
	"database/sql"
	"embed"

	"github.com/sagasuite/sagasuite/libs/sqlstore"
)

//go:embed *.sql
var files embed.FS

// Apply creates or upgrades the inventory tables and the shared outbox and
// inbox tables.
func Apply(ctx context.Context, db *sql.DB) error {
	if err := sqlstore.MigrateMessaging(ctx, db); err != nil {
		return err
	}
	return sqlstore.Migrate(ctx, db, files, "goose_inventory_version")
}
