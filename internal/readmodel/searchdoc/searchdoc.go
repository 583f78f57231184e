// Package searchdoc is the Elasticsearch contract of search-indexer, shared
// with the query API: the alias readers query, the physical index name
// pattern, the document shape and the mapping.
package searchdoc

import (
	"time"

	"github.com/escqrs/platform/pkg/events"
)

// Alias is what readers query and the live indexer writes through. A rebuild
// fills a new physical index and moves the alias atomically.
const Alias = "orders"

// FirstIndex is the physical index created when none exists.
const FirstIndex = "orders-v1"

// CheckpointIndex holds one document per projection with its progress.
const CheckpointIndex = "projection-checkpoints"

// Projection is this read model's name in GET /v1/projections.
const Projection = "search"

// Order is one indexed order. Its Elasticsearch document version is the
// order stream's version (external versioning), so a stale or duplicate
// write is rejected by Elasticsearch itself.
type Order struct {
	OrderID      string            `json:"order_id"`
	CustomerID   string            `json:"customer_id"`
	Status       string            `json:"status"`
	Items        []events.LineItem `json:"items"`
	ItemNames    []string          `json:"item_names"`
	SKUs         []string          `json:"skus"`
	TotalCents   int64             `json:"total_cents"`
	TaxCents     int64             `json:"tax_cents"`
	Currency     string            `json:"currency"`
	Version      int64             `json:"version"`
	LastPosition int64             `json:"last_position"`
	PlacedAt     time.Time         `json:"placed_at"`
	UpdatedAt    time.Time         `json:"updated_at"`
}

// Mapping is the explicit mapping of the orders index: full text over item
// names and SKUs, keywords for exact filters, numbers and dates for ranges.
const Mapping = `{
  "settings": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "200ms"},
  "mappings": {
    "dynamic": "strict",
    "properties": {
      "order_id":      {"type": "keyword"},
      "customer_id":   {"type": "keyword"},
      "status":        {"type": "keyword"},
      "items": {"properties": {
        "sku":              {"type": "keyword", "fields": {"text": {"type": "text"}}},
        "name":             {"type": "text"},
        "quantity":         {"type": "long"},
        "unit_price_cents": {"type": "long"}
      }},
      "item_names":    {"type": "text"},
      "skus":          {"type": "keyword", "fields": {"text": {"type": "text"}}},
      "total_cents":   {"type": "long"},
      "tax_cents":     {"type": "long"},
      "currency":      {"type": "keyword"},
      "version":       {"type": "long"},
      "last_position": {"type": "long"},
      "placed_at":     {"type": "date"},
      "updated_at":    {"type": "date"}
    }
  }
}`

// Checkpoint is the document with id Projection in CheckpointIndex: how far
// the indexer got, for GET /v1/projections. Position is the highest store
// position among the events handed to the indexer; it never decreases.
// Account events are skipped before they reach the indexer, so after a run
// of account events Position trails the store's head although nothing is
// pending. EventsApplied is a running count of order events folded into
// documents (it can over-count while two replicas overlap during a
// rebalance). UpdatedAt is the wall-clock time of the last write.
type Checkpoint struct {
	Projection    string    `json:"projection"`
	Position      int64     `json:"position"`
	EventsApplied int64     `json:"events_applied"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// CheckpointMapping is the explicit mapping of CheckpointIndex.
const CheckpointMapping = `{
  "settings": {"number_of_shards": 1, "number_of_replicas": 0},
  "mappings": {
    "dynamic": "strict",
    "properties": {
      "projection":     {"type": "keyword"},
      "position":       {"type": "long"},
      "events_applied": {"type": "long"},
      "updated_at":     {"type": "date"}
    }
  }
}`
