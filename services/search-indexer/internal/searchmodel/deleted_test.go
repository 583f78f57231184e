package searchmodel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/escqrs/platform/internal/readmodel/searchdoc"
	"github.com/escqrs/platform/pkg/events"
	"github.com/escqrs/platform/services/search-indexer/internal/searchmodel"
)

// TestApplyAfterHandDeletion deletes a document by hand and applies its
// stream again from version 1, as the Sequencer does for an order without
// a document. Elasticsearch keeps the deleted version (3, one above the
// document's 2) for index.gc_deletes and refuses version 2 with 409; the
// model must report that as ErrDeleted (transient) rather than as "a newer
// version is stored", and write the document once the tombstone is gone.
func TestApplyAfterHandDeletion(t *testing.T) {
	t.Parallel()
	client, names, model := setup(t)
	ctx := context.Background()
	s := newStream(events.StreamOrder)
	evs := []events.Envelope{
		s.next(10, events.OrderPlaced{CustomerID: uuid.New(), Items: []events.LineItem{lamp}, Currency: "EUR"}),
		s.next(11, events.OrderPaid{AmountCents: 2500, Method: "card"}),
	}
	mustApply(t, model, evs...)
	want, _, _ := getDoc(t, client, names, s.id)
	if _, err := client.Delete().Index(names.Alias).Id(s.id.String()).Do(ctx); err != nil {
		t.Fatal(err)
	}

	err := model.Apply(ctx, evs)
	if !errors.Is(err, searchmodel.ErrDeleted) || !model.Transient(err) {
		t.Fatalf("apply over a tombstone: %v (transient %v), want a transient ErrDeleted", err, model.Transient(err))
	}

	// Forget deletions at once instead of after 60s; the next refresh
	// prunes the tombstone.
	if _, err := client.IndexPutSettings(names.Alias).BodyString(`{"index": {"gc_deletes": "0s"}}`).Do(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for err = model.Apply(ctx, evs); errors.Is(err, searchmodel.ErrDeleted) && time.Now().Before(deadline); err = model.Apply(ctx, evs) {
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("apply after the tombstone expired: %v", err)
	}
	checkDocs(t, client, names, map[uuid.UUID]searchdoc.Order{s.id: want})
}
