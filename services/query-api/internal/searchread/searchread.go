// Package searchread queries search-indexer's Elasticsearch model (the
// searchdoc contract) through its alias, and reads the indexer's checkpoint
// document.
package searchread

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/olivere/elastic/v7"

	"github.com/escqrs/platform/internal/readmodel/searchdoc"
	"github.com/escqrs/platform/services/query-api/internal/model"
)

// Reader searches orders. It is safe for concurrent use.
type Reader struct {
	es              *elastic.Client
	alias           string
	checkpointIndex string
}

// New returns a Reader that searches alias and reads the search
// projection's checkpoint from checkpointIndex.
func New(es *elastic.Client, alias, checkpointIndex string) *Reader {
	return &Reader{es: es, alias: alias, checkpointIndex: checkpointIndex}
}

// TextFields are the full-text fields a query string is matched against.
var TextFields = []string{"item_names", "items.name", "skus.text", "items.sku.text"}

// dateFormat is what the range filters send: Elasticsearch's date type keeps
// milliseconds, so finer digits would only pretend to matter.
const dateFormat = "2006-01-02T15:04:05.000Z07:00"

// Query builds the Elasticsearch query of q; exported for its tests.
func Query(q model.SearchQuery) *elastic.BoolQuery {
	b := elastic.NewBoolQuery()
	if q.Text != "" {
		// cross_fields with AND: every word must match, but not necessarily
		// in the same field ("lamp A-1" finds the lamp whose SKU is A-1).
		b.Must(elastic.NewMultiMatchQuery(q.Text, TextFields...).Type("cross_fields").Operator("and"))
	}
	if q.Status != "" {
		b.Filter(elastic.NewTermQuery("status", q.Status))
	}
	if q.CustomerID != "" {
		b.Filter(elastic.NewTermQuery("customer_id", q.CustomerID))
	}
	if q.MinTotalCents != nil || q.MaxTotalCents != nil {
		r := elastic.NewRangeQuery("total_cents")
		if q.MinTotalCents != nil {
			r.Gte(*q.MinTotalCents)
		}
		if q.MaxTotalCents != nil {
			r.Lte(*q.MaxTotalCents)
		}
		b.Filter(r)
	}
	if q.From != nil || q.To != nil {
		r := elastic.NewRangeQuery("placed_at").Format("strict_date_optional_time")
		if q.From != nil {
			r.Gte(q.From.UTC().Format(dateFormat))
		}
		if q.To != nil {
			r.Lte(q.To.UTC().Format(dateFormat))
		}
		b.Filter(r)
	}
	return b
}

// Search returns one page of orders matching q, newest first (placed_at
// DESC, order_id DESC), continuing after q.After. A missing alias (the
// indexer has not created its index yet) is an empty result.
func (r *Reader) Search(ctx context.Context, q model.SearchQuery) (model.SearchResult, error) {
	svc := r.es.Search(r.alias).Query(Query(q)).
		SortBy(elastic.NewFieldSort("placed_at").Desc(), elastic.NewFieldSort("order_id").Desc()).
		Size(q.Limit + 1). // one extra hit tells whether another page exists
		TrackTotalHits(true)
	if len(q.After) > 0 {
		svc = svc.SearchAfter(q.After...)
	}
	res, err := svc.Do(ctx)
	if err != nil {
		if isIndexMissing(err) {
			return model.SearchResult{Items: []model.Order{}}, nil
		}
		return model.SearchResult{}, fmt.Errorf("search %s: %w", r.alias, err)
	}
	out := model.SearchResult{Items: []model.Order{}, Total: res.TotalHits()}
	if res.Hits == nil {
		return out, nil
	}
	hits := res.Hits.Hits
	if len(hits) > q.Limit {
		hits = hits[:q.Limit]
		out.Next = hits[len(hits)-1].Sort
	}
	for _, h := range hits {
		var d searchdoc.Order
		if err := json.Unmarshal(h.Source, &d); err != nil {
			return model.SearchResult{}, fmt.Errorf("decode search hit %s: %w", h.Id, err)
		}
		o, err := fromDoc(d)
		if err != nil {
			return model.SearchResult{}, fmt.Errorf("search hit %s: %w", h.Id, err)
		}
		out.Items = append(out.Items, o)
	}
	return out, nil
}

func fromDoc(d searchdoc.Order) (model.Order, error) {
	var o model.Order
	if err := o.OrderID.UnmarshalText([]byte(d.OrderID)); err != nil {
		return o, fmt.Errorf("order_id: %w", err)
	}
	if err := o.CustomerID.UnmarshalText([]byte(d.CustomerID)); err != nil {
		return o, fmt.Errorf("customer_id: %w", err)
	}
	o.Status, o.Items, o.TaxCents, o.TotalCents, o.Currency = d.Status, d.Items, d.TaxCents, d.TotalCents, d.Currency
	o.Version, o.PlacedAt, o.UpdatedAt = d.Version, d.PlacedAt.UTC(), d.UpdatedAt.UTC()
	if o.Items == nil {
		o.Items = o.Items[:0:0]
	}
	return o, nil
}

// Checkpoint returns the search projection's progress from the
// searchdoc.Checkpoint document with id searchdoc.Projection (the zero
// Checkpoint when the indexer has recorded none).
func (r *Reader) Checkpoint(ctx context.Context) (model.Checkpoint, error) {
	res, err := r.es.Get().Index(r.checkpointIndex).Id(searchdoc.Projection).Do(ctx)
	if err != nil {
		if elastic.IsNotFound(err) || isIndexMissing(err) {
			return model.Checkpoint{}, nil
		}
		return model.Checkpoint{}, fmt.Errorf("read search checkpoint: %w", err)
	}
	if !res.Found || len(res.Source) == 0 {
		return model.Checkpoint{}, nil
	}
	var d searchdoc.Checkpoint
	if err := json.Unmarshal(res.Source, &d); err != nil {
		return model.Checkpoint{}, fmt.Errorf("decode search checkpoint: %w", err)
	}
	cp := model.Checkpoint{Position: d.Position, EventsApplied: d.EventsApplied}
	if !d.UpdatedAt.IsZero() {
		t := d.UpdatedAt.UTC()
		cp.UpdatedAt = &t
	}
	return cp, nil
}

// Ping reports whether the cluster answers.
func (r *Reader) Ping(ctx context.Context) error {
	if _, err := r.es.ClusterHealth().Do(ctx); err != nil {
		return fmt.Errorf("elasticsearch cluster health: %w", err)
	}
	return nil
}

func isIndexMissing(err error) bool {
	var e *elastic.Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound && e.Details != nil && e.Details.Type == "index_not_found_exception"
}
