// Package ordersdb is the schema of projector-orders' Postgres read models:
// orders_view (also the per-customer order list), accounts_balance,
// account_activity and projection_checkpoints.
package ordersdb

import (
	"embed"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/escqrs/platform/internal/platform/postgres"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Projection is this read model's name in projection_checkpoints and in
// GET /v1/projections.
const Projection = "orders"

// Migrate applies the read-model migrations.
func Migrate(databaseURL string) error {
	return postgres.Migrate(databaseURL, migrations, "migrations", "schema_migrations_readmodel_orders")
}

// ChangesChannel is the LISTEN/NOTIFY channel on which projector-orders
// names, in the transaction that applies them, the streams whose rows it
// changed. Postgres delivers a notification only once its transaction has
// committed, so a listener that reads the row after it sees the change: the
// query API's ?min_version reads wake on it instead of polling the tables.
const ChangesChannel = "orders_readmodel_changes"

// NotifyChangesSQL sends one notification on channel $1 per payload in $2
// (ChangePayloads).
const NotifyChangesSQL = `SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`

// maxChangePayload keeps a payload under Postgres's limit (8000 bytes).
const maxChangePayload = 7900

// ChangePayloads writes stream ids as notification payloads: the ids of each
// separated by commas, as many in one as fit.
func ChangePayloads(ids []uuid.UUID) []string {
	var (
		out []string
		b   strings.Builder
	)
	for _, id := range ids {
		if b.Len()+1+36 > maxChangePayload {
			out = append(out, b.String())
			b.Reset()
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(id.String())
	}
	if b.Len() > 0 {
		out = append(out, b.String())
	}
	return out
}

// ParseChangePayload reads the stream ids of a ChangePayloads payload.
func ParseChangePayload(payload string) ([]uuid.UUID, error) {
	if payload == "" {
		return nil, nil
	}
	parts := strings.Split(payload, ",")
	ids := make([]uuid.UUID, len(parts))
	for i, p := range parts {
		id, err := uuid.Parse(p)
		if err != nil {
			return nil, fmt.Errorf("change notification %q: %w", payload, err)
		}
		ids[i] = id
	}
	return ids, nil
}
