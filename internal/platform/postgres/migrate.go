// Package postgres holds what every component that talks to PostgreSQL
// shares: versioned migrations, the classification of errors that mean the
// server is unavailable, and query arguments in the form pgx encodes
// fastest. The binary COPY writer is in the subpackage pgcopy.
//
// Migrations use golang-migrate. Each component (event store, each read
// model) keeps its own migrations table, so they evolve independently in one
// database; the tool's advisory lock makes concurrent start-ups of several
// replicas safe.
package postgres

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5" // registers pgx5://
	"github.com/golang-migrate/migrate/v4/source/iofs"
)

// Migrate applies every migration in dir of fsys not yet recorded in table.
func Migrate(databaseURL string, fsys fs.FS, dir, table string) error {
	src, err := iofs.New(fsys, dir)
	if err != nil {
		return fmt.Errorf("open migrations %s: %w", dir, err)
	}
	dbURL, err := migrateURL(databaseURL, table)
	if err != nil {
		return err
	}
	m, err := migrate.NewWithSourceInstance("iofs", src, dbURL)
	if err != nil {
		return fmt.Errorf("connect for migrations %s: %w", table, err)
	}
	defer m.Close()
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("apply migrations %s: %w", table, err)
	}
	return nil
}

// migrateURL turns a postgres:// URL into golang-migrate's pgx5:// form with
// the component's own migrations table.
func migrateURL(databaseURL, table string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "", fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", fmt.Errorf("DATABASE_URL scheme %q: want postgres://", u.Scheme)
	}
	u.Scheme = "pgx5"
	q := u.Query()
	q.Set("x-migrations-table", table)
	u.RawQuery = q.Encode()
	return u.String(), nil
}
