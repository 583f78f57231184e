// Package readmodel holds the contracts between each projector and the query
// API: the Postgres read-model schema (ordersdb), the Redis key layout
// (statskeys) and the Elasticsearch document and index names (searchdoc).
// A projector owns and writes its model; the query API only reads it.
package readmodel
