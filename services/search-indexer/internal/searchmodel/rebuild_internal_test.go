package searchmodel

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/olivere/elastic/v7"

	"github.com/escqrs/platform/internal/platform/elasticclient"
	"github.com/escqrs/platform/internal/readmodel/searchdoc"
	"github.com/escqrs/platform/internal/testsupport/testenv"
)

// TestRebuildHeartbeat checks the guard between concurrent rebuilds with a
// controlled clock: a filling rebuild refreshes the heartbeat in its index's
// _meta, another rebuild is refused while the heartbeat is fresh, and takes
// the index for a dead rebuild's leftover (deletes it) once it is stale.
func TestRebuildHeartbeat(t *testing.T) {
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
	t.Cleanup(func() { _, _ = client.DeleteIndex(p + "-*").Do(context.Background()) })
	if err := EnsureIndices(ctx, client, names); err != nil {
		t.Fatal(err)
	}

	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	first := NewRebuildTarget(client, names, nil)
	first.now = clock
	if err := first.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	heartbeat := func() time.Time {
		t.Helper()
		ixs, err := first.versions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ix := range ixs {
			if ix.name == p+"-v2" {
				hb, _ := ix.heartbeat()
				return hb
			}
		}
		t.Fatalf("no index %s-v2 in %+v", p, ixs)
		return time.Time{}
	}
	if hb := heartbeat(); !hb.Equal(now) {
		t.Fatalf("heartbeat at creation %v, want %v", hb, now)
	}
	now = now.Add(5 * time.Second)
	if err := first.Fill().HandleBatch(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if hb := heartbeat(); !hb.Equal(now.Add(-5 * time.Second)) {
		t.Errorf("heartbeat refreshed after 5s (%v): every %s is enough", hb, heartbeatEvery)
	}
	now = now.Add(heartbeatEvery)
	if err := first.Fill().HandleBatch(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if hb := heartbeat(); !hb.Equal(now) {
		t.Errorf("heartbeat %v, want %v", hb, now)
	}

	second := NewRebuildTarget(client, names, nil, WithDeleteGrace(time.Millisecond))
	now = now.Add(heartbeatStale - time.Second)
	second.now = clock
	if err := second.Prepare(ctx); !errors.Is(err, ErrRebuildInProgress) {
		t.Fatalf("prepare while the first fills: %v, want ErrRebuildInProgress", err)
	}
	now = now.Add(2 * time.Second)
	if err := second.Prepare(ctx); err != nil {
		t.Fatalf("prepare after the first went quiet: %v", err)
	}
	if second.Index() != p+"-v3" {
		t.Errorf("second rebuild fills %s, want %s-v3", second.Index(), p)
	}
	if exists, err := client.IndexExists(p + "-v2").Do(ctx); err != nil || exists {
		t.Errorf("stale index %s-v2 still exists (%v)", p, err)
	}

	// The swap clears the heartbeat: an index swapped in and later out
	// (its deletion failed) is a leftover at once, not a rebuild in progress.
	if err := second.Swap(ctx); err != nil {
		t.Fatal(err)
	}
	second.Wait()
	if _, err := client.CreateIndex(p + "-v1").BodyString(searchdoc.Mapping).Do(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Alias().Action(elastic.NewAliasRemoveAction(p).Index(p + "-v3")).
		Action(elastic.NewAliasAddAction(p).Index(p + "-v1").IsWriteIndex(true)).Do(ctx); err != nil {
		t.Fatalf("recreate v1 and swap back: %v", err)
	}
	third := NewRebuildTarget(client, names, nil)
	third.now = clock
	if err := third.Prepare(ctx); err != nil {
		t.Fatalf("prepare right after a swap: %v", err)
	}
	if third.Index() != p+"-v4" {
		t.Errorf("third rebuild fills %s, want %s-v4", third.Index(), p)
	}
}
