// Package ordersdb is the schema of projector-orders' Postgres read models:
// orders_view (also the per-customer order list), accounts_balance,
// account_activity and projection_checkpoints.
package ordersdb

import (
	"embed"

	"github.com/escqrs/platform/internal/pgmigrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Projection is this read model's name in projection_checkpoints and in
// GET /v1/projections.
const Projection = "orders"

// Migrate applies the read-model migrations.
func Migrate(databaseURL string) error {
	return pgmigrate.Up(databaseURL, migrations, "migrations", "schema_migrations_readmodel_orders")
}
