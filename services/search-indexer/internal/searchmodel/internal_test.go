package searchmodel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/olivere/elastic/v7"

	"github.com/escqrs/platform/internal/platform/elasticclient"
	"github.com/escqrs/platform/internal/readmodel/searchdoc"
	"github.com/escqrs/platform/internal/testsupport/testenv"
)

// TestBulkOutcomes sends real bulk requests and checks how their item
// results are classified: a 409 on an order document (a newer version is
// stored) is success; a document the strict mapping refuses is a poison
// error.
func TestBulkOutcomes(t *testing.T) {
	t.Parallel()
	testenv.RequireElasticsearch(t)
	client, err := elasticclient.NewClient(testenv.ElasticsearchURL())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Stop()
	p := "test-search-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	names := Names{Alias: p, FirstIndex: p + "-v1", CheckpointIndex: p + "-checkpoints"}
	ctx := context.Background()
	t.Cleanup(func() { _, _ = client.DeleteIndex(names.FirstIndex, names.CheckpointIndex).Do(context.Background()) })
	if err := EnsureIndices(ctx, client, names); err != nil {
		t.Fatal(err)
	}
	m := New(client, names.Alias, names.CheckpointIndex)
	id := uuid.NewString()
	if _, err := client.Index().Index(names.Alias).Id(id).VersionType("external").Version(5).
		BodyJson(searchdoc.Order{OrderID: id, Status: "paid", Version: 5}).Do(ctx); err != nil {
		t.Fatal(err)
	}

	stale := client.Bulk().Add(
		elastic.NewBulkIndexRequest().Index(names.Alias).Id(id).VersionType("external").Version(3).Doc(searchdoc.Order{OrderID: id, Version: 3}),
		elastic.NewBulkIndexRequest().Index(names.Alias).Id(id).VersionType("external").Version(5).Doc(searchdoc.Order{OrderID: id, Version: 5}),
		m.checkpointUpdate(10, 2))
	res, err := stale.Do(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Errors || res.Items[0]["index"].Status != http.StatusConflict || res.Items[1]["index"].Status != http.StatusConflict {
		t.Fatalf("bulk of stale versions: %+v %+v, want two 409s", res.Items[0]["index"], res.Items[1]["index"])
	}
	if err := m.checkBulk(res); err != nil {
		t.Fatalf("409 on an order document: %v, want success", err)
	}

	bad := client.Bulk().Add(elastic.NewBulkIndexRequest().Index(names.Alias).Id(uuid.NewString()).
		VersionType("external").Version(1).Doc(map[string]any{"order_id": "x", "not_in_mapping": 1}))
	res, err = bad.Do(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = m.checkBulk(res)
	var ie *ItemError
	if !errors.As(err, &ie) || ie.Status != http.StatusBadRequest || ie.Details == nil || ie.Details.Type != "strict_dynamic_mapping_exception" {
		t.Fatalf("strict mapping violation: %v, want a 400 ItemError", err)
	}
	if m.Transient(err) {
		t.Errorf("mapping violation %v reported as transient", err)
	}
}

// TestTransient classifies errors as outages (retry without end) or not.
func TestTransient(t *testing.T) {
	t.Parallel()
	m := New(nil, "orders", "projection-checkpoints")

	// A real refused connection, through the real client.
	down, err := elasticclient.NewClient("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer down.Stop()
	_, connErr := down.Mget().Add(elastic.NewMultiGetItem().Index("orders").Id("x")).Do(context.Background())
	if connErr == nil {
		t.Fatal("request to a closed port succeeded")
	}

	// A real event store that was never migrated.
	_, notMigrated := NewStoreStreamTypes(testenv.NewPool(t, testenv.NewDatabase(t))).StreamTypes(context.Background(), []uuid.UUID{uuid.New()})
	if notMigrated == nil {
		t.Fatal("stream types from an empty database: no error")
	}

	item := func(index string, status int, typ string) error {
		return &ItemError{Index: index, ID: "1", Status: status, Details: &elastic.ErrorDetails{Type: typ}}
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", fmt.Errorf("mget: %w", connErr), true},
		{"no node", fmt.Errorf("bulk: %w", elastic.ErrNoClient), true},
		{"deadline", fmt.Errorf("bulk: %w", context.DeadlineExceeded), true},
		{"503", fmt.Errorf("bulk: %w", &elastic.Error{Status: 503}), true},
		{"429", fmt.Errorf("bulk: %w", &elastic.Error{Status: 429}), true},
		{"index missing", fmt.Errorf("mget: %w", &elastic.Error{Status: 404, Details: &elastic.ErrorDetails{Type: "index_not_found_exception"}}), true},
		{"400", fmt.Errorf("bulk: %w", &elastic.Error{Status: 400}), false},
		{"item 429 among item 400s", fmt.Errorf("bulk: %w", errors.Join(item("orders-v1", 400, "mapper_parsing_exception"),
			item("orders-v1", 429, "es_rejected_execution_exception"))), true},
		{"item 400", fmt.Errorf("bulk: %w", errors.Join(item("orders-v1", 400, "mapper_parsing_exception"))), false},
		{"checkpoint contention", fmt.Errorf("bulk: %w", errors.Join(item("projection-checkpoints", 409, "version_conflict_engine_exception"))), true},
		{"stale document", fmt.Errorf("apply: %w", ErrStale), false},
		{"store not migrated", notMigrated, true},
		{"store shutting down", fmt.Errorf("stream types: %w", &pgconn.PgError{Code: "57P01"}), true},
		{"store syntax error", fmt.Errorf("stream types: %w", &pgconn.PgError{Code: "42601"}), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := m.Transient(tt.err); got != tt.want {
				t.Errorf("Transient(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestWaitEnsureIndicesStops: while Elasticsearch is unreachable the
// start-up waits, and it gives up when the process is stopped.
func TestWaitEnsureIndicesStops(t *testing.T) {
	t.Parallel()
	down, err := elasticclient.NewClient("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer down.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = WaitEnsureIndices(ctx, discardLogger(), down, DefaultNames())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("gave up after %v, want it to wait for the context", d)
	}
}
func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
