package rebuilder

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// liveTables are the tables a rebuild replaces, in the order every writer
// of the model locks them (orders before accounts before activity), so the
// swap's LOCK queues behind the live projector instead of deadlocking it.
// projection_checkpoints is not rebuilt: it is moved forward in the swap.
var liveTables = []string{"orders_view", "accounts_balance", "account_activity"}

func rebuildName(table string) string { return table + "_rebuild" }
func oldName(table string) string     { return table + "_old" }

// index is one index of a live table, read from the catalog, so that a
// rebuild reproduces whatever the migrations created without repeating it.
type index struct {
	name       string // the live (canonical) name; the swap gives it back to the new index
	unique     bool
	constraint string // "p" (primary key), "u" (unique constraint) or "" (plain index)
	spec       string // what follows USING in its definition: "btree (order_id)"
}

// The fresh tables' indexes get temporary names, and the replaced tables'
// indexes are moved out of the way under others, so that after the swap
// the live indexes (and their constraints) have their canonical names
// again and the next rebuild finds no collision.
func (ix index) rebuildName(table string, i int) string {
	return fmt.Sprintf("%s_rebuild_ix%d", table, i)
}
func (ix index) oldName(table string, i int) string { return fmt.Sprintf("%s_old_ix%d", table, i) }

const indexesSQL = `SELECT i.relname, x.indisunique, coalesce(c.contype::text, ''), pg_get_indexdef(x.indexrelid)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u', 'x')
WHERE x.indrelid = to_regclass($1)
ORDER BY i.relname`

// readIndexes returns the indexes of each live table.
func readIndexes(ctx context.Context, db pgxQuerier) (map[string][]index, error) {
	out := map[string][]index{}
	for _, t := range liveTables {
		rows, err := db.Query(ctx, indexesSQL, t)
		if err != nil {
			return nil, fmt.Errorf("read indexes of %s: %w", t, err)
		}
		ixs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (index, error) {
			var (
				ix  index
				def string
			)
			if err := row.Scan(&ix.name, &ix.unique, &ix.constraint, &def); err != nil {
				return ix, err
			}
			_, spec, ok := strings.Cut(def, " USING ")
			if !ok {
				return ix, fmt.Errorf("index %s: cannot read its definition %q", ix.name, def)
			}
			ix.spec = spec
			if ix.constraint == "x" {
				return ix, fmt.Errorf("index %s backs an exclusion constraint, which a rebuild does not reproduce", ix.name)
			}
			return ix, nil
		})
		if err != nil {
			return nil, fmt.Errorf("read indexes of %s: %w", t, err)
		}
		for i, ix := range ixs {
			// Postgres truncates longer names silently; the swap renames by name.
			if n := max(len(ix.name), len(ix.rebuildName(t, i)), len(ix.oldName(t, i))); n > 63 {
				return nil, fmt.Errorf("index %s of %s: a name of %d bytes is too long to swap", ix.name, t, n)
			}
		}
		out[t] = ixs
	}
	return out, nil
}

// createIndexSQL builds the statements that give the fresh table the
// live table's index i (and the constraint it backs).
func createIndexSQL(table string, i int, ix index) []string {
	name := ix.rebuildName(table, i)
	unique := ""
	if ix.unique {
		unique = "UNIQUE "
	}
	stmts := []string{fmt.Sprintf("CREATE %sINDEX %s ON %s USING %s", unique, quote(name), quote(rebuildName(table)), ix.spec)}
	switch ix.constraint {
	case "p":
		stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s PRIMARY KEY USING INDEX %s", quote(rebuildName(table)), quote(name), quote(name)))
	case "u":
		stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s UNIQUE USING INDEX %s", quote(rebuildName(table)), quote(name), quote(name)))
	}
	return stmts
}

// swapSQL renames, for every table, the live table and its indexes out of
// the way and the fresh ones into their names. Renaming an index that backs
// a constraint renames the constraint too.
func swapSQL(indexes map[string][]index) []string {
	var stmts []string
	for _, t := range liveTables {
		for i, ix := range indexes[t] {
			stmts = append(stmts, fmt.Sprintf("ALTER INDEX %s RENAME TO %s", quote(ix.name), quote(ix.oldName(t, i))))
		}
		stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s RENAME TO %s", quote(t), quote(oldName(t))))
		for i, ix := range indexes[t] {
			stmts = append(stmts, fmt.Sprintf("ALTER INDEX %s RENAME TO %s", quote(ix.rebuildName(t, i)), quote(ix.name)))
		}
		stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s RENAME TO %s", quote(rebuildName(t)), quote(t)))
	}
	return stmts
}

// dropSQL drops the tables a rebuild leaves: fresh ones of an aborted
// rebuild, or replaced ones whose drop after a swap did not happen.
func dropSQL(names func(string) string) string {
	var qs []string
	for _, t := range liveTables {
		qs = append(qs, quote(names(t)))
	}
	return "DROP TABLE IF EXISTS " + strings.Join(qs, ", ")
}

func quote(name string) string { return pgx.Identifier{name}.Sanitize() }

type pgxQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// analyzeColumns returns, per live table, the columns a rebuild computes
// statistics for before the swap: the indexed ones, which the planner needs
// to keep choosing the indexes the queries were planned with. The other
// columns (an order's items, an activity's description) cost most of a
// full ANALYZE and nothing filters on them; an ANALYZE of some columns
// leaves the table's count of changed rows as it is, so autovacuum still
// analyzes the whole table soon after the swap.
func analyzeColumns(ctx context.Context, db pgxQuerier) (map[string][]string, error) {
	out := map[string][]string{}
	for _, t := range liveTables {
		rows, err := db.Query(ctx, `SELECT a.attname FROM pg_attribute a
			WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
			  AND EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = a.attrelid AND a.attnum = ANY (x.indkey::int2[]))
			ORDER BY a.attnum`, t)
		if err != nil {
			return nil, fmt.Errorf("read indexed columns of %s: %w", t, err)
		}
		cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("read indexed columns of %s: %w", t, err)
		}
		out[t] = cols
	}
	return out, nil
}

func analyzeSQL(table string, columns []string) string {
	if len(columns) == 0 {
		return "ANALYZE " + quote(rebuildName(table))
	}
	qs := make([]string, len(columns))
	for i, c := range columns {
		qs[i] = quote(c)
	}
	return fmt.Sprintf("ANALYZE %s (%s)", quote(rebuildName(table)), strings.Join(qs, ", "))
}

// grantsSQL returns the GRANTs that give the fresh table the privileges
// other roles hold on the live one (a read-only role of the query API, say);
// a table is created with none, and the owner's are implicit.
func grantsSQL(ctx context.Context, db pgxQuerier, table string) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT a.privilege_type, a.grantee = 0, coalesce(r.rolname, ''), a.is_grantable
		FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
		WHERE c.oid = to_regclass($1) AND a.grantee <> c.relowner
		ORDER BY 3, 1`, table)
	if err != nil {
		return nil, fmt.Errorf("read privileges on %s: %w", table, err)
	}
	var out []string
	var (
		privilege, role string
		public, grant   bool
	)
	_, err = pgx.ForEachRow(rows, []any{&privilege, &public, &role, &grant}, func() error {
		to := "PUBLIC"
		if !public {
			to = quote(role)
		}
		s := fmt.Sprintf("GRANT %s ON %s TO %s", privilege, quote(rebuildName(table)), to)
		if grant {
			s += " WITH GRANT OPTION"
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read privileges on %s: %w", table, err)
	}
	return out, nil
}
