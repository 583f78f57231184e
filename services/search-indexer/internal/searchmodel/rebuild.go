package searchmodel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/olivere/elastic/v7"

	"github.com/escqrs/platform/internal/domain/order"
	"github.com/escqrs/platform/internal/readmodel/searchdoc"
	"github.com/escqrs/platform/internal/rebuild"
	"github.com/escqrs/platform/pkg/events"
)

// ErrRebuildInProgress means another rebuild of the same alias is filling
// an index right now (its heartbeat is fresh), so this one does not start.
var ErrRebuildInProgress = errors.New("another rebuild of the index is in progress")

// ErrFillIncomplete means the filled index does not hold the documents the
// fill wrote, so it is not swapped in (e.g. it was deleted and re-created
// by something else while filling).
var ErrFillIncomplete = errors.New("filled index is incomplete")

const (
	// heartbeatEvery is how often a filling rebuild stamps its index, and
	// heartbeatStale how old a stamp may be before the index counts as the
	// leftover of a dead rebuild. The gap covers a slow bulk request (the
	// client gives up after 30s) and a slow first count of the store.
	heartbeatEvery = 10 * time.Second
	heartbeatStale = 2 * time.Minute
	metaHeartbeat  = "rebuild_heartbeat"
)

// RebuildTarget is the rebuild.Target of the orders index. It fills a new
// physical index "<base>N+1" next to the live "<base>N" (base is
// Names.FirstIndex without its trailing number, "orders-v"), straight and
// not through the alias, with refreshes off; then it moves the alias in one
// atomic _aliases request and deletes the old index. A RebuildTarget is good
// for one rebuild.
//
// The live indexer keeps writing through the alias throughout: into the old
// index before the swap, into the new one after it. The catch-up after the
// swap (Live) replays what the fill did not see; external versioning makes
// every overlap between the two harmless.
type RebuildTarget struct {
	client    *elastic.Client
	names     Names
	live      rebuild.Sink
	log       *slog.Logger
	grace     time.Duration
	maxCached int
	now       func() time.Time

	base    string
	index   string
	fill    *fillSink
	swapped bool
	old     []string
	cleaned chan struct{} // closed when the old index is deleted
}

var _ rebuild.Target = (*RebuildTarget)(nil)

// TargetOption configures a RebuildTarget.
type TargetOption func(*RebuildTarget)

// WithDeleteGrace sets how long the old index lives on after the swap (default
// 2s), so that searches that resolved the alias just before it moved can
// finish instead of failing on a vanished index.
func WithDeleteGrace(d time.Duration) TargetOption { return func(t *RebuildTarget) { t.grace = d } }

// WithMaxCached bounds the order states the fill keeps in memory between
// batches (default 100,000); past it every pending order is written, the
// cache starts over, and orders that continue later are read back from the
// new index.
func WithMaxCached(n int) TargetOption { return func(t *RebuildTarget) { t.maxCached = n } }

// WithTargetLogger sets the logger of the swap's aftermath (default: discard).
func WithTargetLogger(log *slog.Logger) TargetOption { return func(t *RebuildTarget) { t.log = log } }

// NewRebuildTarget returns a target that rebuilds the index behind
// names.Alias; live is where the catch-up goes (a consumer.Sequencer over a
// Model writing through the alias).
func NewRebuildTarget(client *elastic.Client, names Names, live rebuild.Sink, opts ...TargetOption) *RebuildTarget {
	t := &RebuildTarget{client: client, names: names, live: live, log: slog.New(slog.DiscardHandler),
		grace: 2 * time.Second, maxCached: 100_000, now: time.Now}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Index is the physical index being filled ("" before Prepare).
func (t *RebuildTarget) Index() string { return t.index }

// OldIndices are the indices the alias left at the swap.
func (t *RebuildTarget) OldIndices() []string { return t.old }

// Prepare creates the new index. Indices of the same name pattern that the
// alias does not point at are leftovers of an aborted rebuild (or of an old
// index whose deletion failed) and are deleted, unless one still carries a
// fresh heartbeat: then another rebuild is filling it and Prepare returns
// ErrRebuildInProgress.
func (t *RebuildTarget) Prepare(ctx context.Context) error {
	base := strings.TrimRight(t.names.FirstIndex, "0123456789")
	if base == t.names.FirstIndex || base == "" {
		return fmt.Errorf("first index %q does not end in a version number", t.names.FirstIndex)
	}
	t.base = base
	existing, err := t.versions(ctx)
	if err != nil {
		return err
	}
	highest := 0
	for _, ix := range existing {
		highest = max(highest, ix.version)
		if ix.live {
			continue
		}
		if hb, ok := ix.heartbeat(); ok && t.now().Sub(hb) < heartbeatStale {
			return fmt.Errorf("index %s was filled %s ago: %w", ix.name, t.now().Sub(hb).Round(time.Second), ErrRebuildInProgress)
		}
		if _, err := t.client.DeleteIndex(ix.name).Do(ctx); err != nil && !elastic.IsNotFound(err) {
			return fmt.Errorf("delete leftover index %s: %w", ix.name, err)
		}
		t.log.Info("deleted leftover index of an earlier rebuild", "index", ix.name)
	}
	body, err := fillMapping(t.now())
	if err != nil {
		return err
	}
	index := t.base + strconv.Itoa(highest+1)
	if _, err := t.client.CreateIndex(index).BodyJson(body).Do(ctx); err != nil {
		if alreadyExists(err) {
			// Another rebuild listed the same indices a moment ago and won.
			return fmt.Errorf("create %s: %w", index, ErrRebuildInProgress)
		}
		return fmt.Errorf("create index %s: %w", index, err)
	}
	t.index = index
	t.fill = &fillSink{t: t, cache: map[uuid.UUID]*cachedOrder{}, lastBeat: t.now()}
	return nil
}

// indexInfo is one index of the name pattern.
type indexInfo struct {
	name    string
	version int
	live    bool // the alias points at it
	meta    map[string]any
}

func (ix indexInfo) heartbeat() (time.Time, bool) {
	s, ok := ix.meta[metaHeartbeat].(string)
	if !ok {
		return time.Time{}, false
	}
	hb, err := time.Parse(time.RFC3339Nano, s)
	return hb, err == nil
}

// versions lists the open indices named base + a number, with their aliases
// and mapping _meta, in one request.
func (t *RebuildTarget) versions(ctx context.Context) ([]indexInfo, error) {
	res, err := t.client.PerformRequest(ctx, elastic.PerformRequestOptions{
		Method: http.MethodGet,
		Path:   "/" + url.PathEscape(t.base+"*"),
	})
	if err != nil {
		return nil, fmt.Errorf("list indices %s*: %w", t.base, err)
	}
	var body map[string]struct {
		Aliases  map[string]json.RawMessage `json:"aliases"`
		Mappings struct {
			Meta map[string]any `json:"_meta"`
		} `json:"mappings"`
	}
	if err := json.Unmarshal(res.Body, &body); err != nil {
		return nil, fmt.Errorf("list indices %s*: %w", t.base, err)
	}
	var out []indexInfo
	for name, b := range body {
		n, err := strconv.Atoi(strings.TrimPrefix(name, t.base))
		if err != nil || n < 1 || !strings.HasPrefix(name, t.base) {
			continue // "orders-v2-old" and the like: not ours
		}
		_, live := b.Aliases[t.names.Alias]
		out = append(out, indexInfo{name: name, version: n, live: live, meta: b.Mappings.Meta})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// fillMapping is searchdoc.Mapping with refreshes off (nothing reads the
// index until the swap, and every refresh costs a segment) and a heartbeat.
func fillMapping(now time.Time) (map[string]any, error) {
	var body map[string]any
	if err := json.Unmarshal([]byte(searchdoc.Mapping), &body); err != nil {
		return nil, fmt.Errorf("searchdoc.Mapping: %w", err)
	}
	settings, ok1 := body["settings"].(map[string]any)
	mappings, ok2 := body["mappings"].(map[string]any)
	if !ok1 || !ok2 {
		return nil, errors.New("searchdoc.Mapping: no settings or mappings")
	}
	settings["refresh_interval"] = "-1"
	mappings["_meta"] = map[string]any{metaHeartbeat: now.UTC().Format(time.RFC3339Nano)}
	return body, nil
}

// liveRefreshInterval is the refresh interval of searchdoc.Mapping, restored
// at the swap.
func liveRefreshInterval() (string, error) {
	var body struct {
		Settings struct {
			RefreshInterval string `json:"refresh_interval"`
		} `json:"settings"`
	}
	if err := json.Unmarshal([]byte(searchdoc.Mapping), &body); err != nil {
		return "", fmt.Errorf("searchdoc.Mapping: %w", err)
	}
	if body.Settings.RefreshInterval == "" {
		return "1s", nil // Elasticsearch's default
	}
	return body.Settings.RefreshInterval, nil
}

// Fill is the sink that writes into the new index.
func (t *RebuildTarget) Fill() rebuild.Sink { return t.fill }

// Live is the sink of the catch-up after the swap.
func (t *RebuildTarget) Live() rebuild.Sink { return t.live }

// Swap makes the new index the one behind the alias. It writes the orders
// still pending in the fill, restores the live refresh interval, refreshes
// (so that the first search after the swap sees every filled document),
// checks that the index holds every document the fill wrote, moves the
// alias in one _aliases request (readers see either the old index or the
// new one, never neither), resets the checkpoint to the rebuilt index, and
// starts deleting the old index after a grace period in the background
// (Wait waits for that). Failures after the alias moved are logged, not
// returned: the swap has happened.
func (t *RebuildTarget) Swap(ctx context.Context) error {
	if t.fill == nil {
		return errors.New("swap before prepare")
	}
	if err := t.fill.flush(ctx); err != nil {
		return fmt.Errorf("write the last orders to %s: %w", t.index, err)
	}
	interval, err := liveRefreshInterval()
	if err != nil {
		return err
	}
	if _, err := t.client.IndexPutSettings(t.index).BodyJson(map[string]any{"index": map[string]any{"refresh_interval": interval}}).Do(ctx); err != nil {
		return fmt.Errorf("restore refresh interval of %s: %w", t.index, err)
	}
	if _, err := t.client.Refresh(t.index).Do(ctx); err != nil {
		return fmt.Errorf("refresh %s: %w", t.index, err)
	}
	n, err := t.client.Count(t.index).Do(ctx)
	if err != nil {
		return fmt.Errorf("count %s: %w", t.index, err)
	}
	if n != t.fill.created {
		return fmt.Errorf("%s holds %d documents, the fill wrote %d: %w", t.index, n, t.fill.created, ErrFillIncomplete)
	}
	old, err := t.moveAlias(ctx)
	if err != nil {
		return err
	}
	t.swapped, t.old = true, old
	// _meta is replaced whole: the heartbeat goes, so that this index, once
	// a later rebuild swaps it out, never passes for one being filled.
	if _, err := t.client.PutMapping().Index(t.index).
		BodyJson(map[string]any{"_meta": map[string]any{"rebuild_swapped_at": t.now().UTC().Format(time.RFC3339Nano)}}).Do(ctx); err != nil {
		t.log.Warn("clear the rebuild heartbeat", "index", t.index, "error", err)
	}
	if err := t.resetCheckpoint(ctx); err != nil {
		t.log.Warn("reset checkpoint after swap (the catch-up raises it again)", "error", err)
	}
	t.log.Info("alias swapped", "alias", t.names.Alias, "index", t.index, "old", old, "documents", n)
	if len(old) > 0 {
		// In the background, so that the catch-up need not wait for the grace.
		t.cleaned = make(chan struct{})
		go t.deleteOld(ctx, old)
	}
	return nil
}

// deleteOld deletes the indices the alias left, after the grace period.
func (t *RebuildTarget) deleteOld(ctx context.Context, old []string) {
	defer close(t.cleaned)
	select {
	case <-ctx.Done():
		t.log.Warn("old index not deleted: stopped during the grace period; the next rebuild deletes it", "indices", old)
		return
	case <-time.After(t.grace):
	}
	if _, err := t.client.DeleteIndex(old...).Do(ctx); err != nil {
		t.log.Warn("delete old index failed; the next rebuild deletes it", "indices", old, "error", err)
		return
	}
	t.log.Info("old index deleted", "indices", old)
}

// Wait returns once the old index is deleted (or its deletion failed or
// was abandoned), which happens in the background after the swap.
func (t *RebuildTarget) Wait() {
	if t.cleaned != nil {
		<-t.cleaned
	}
}

// moveAlias removes the alias from whatever indices hold it now and adds it
// to the new index, atomically. If the alias moved in between (the request
// then fails as a whole), it reads the alias again.
func (t *RebuildTarget) moveAlias(ctx context.Context) ([]string, error) {
	var lastErr error
	for range 3 {
		old, err := t.aliasIndices(ctx)
		if err != nil {
			return nil, err
		}
		svc := t.client.Alias()
		var removed []string
		for _, ix := range old {
			if ix != t.index {
				svc.Action(elastic.NewAliasRemoveAction(t.names.Alias).Index(ix))
				removed = append(removed, ix)
			}
		}
		svc.Action(elastic.NewAliasAddAction(t.names.Alias).Index(t.index).IsWriteIndex(true))
		if _, err := svc.Do(ctx); err != nil {
			lastErr = err
			if !elastic.IsNotFound(err) {
				break
			}
			continue
		}
		return removed, nil
	}
	return nil, fmt.Errorf("move alias %s to %s: %w", t.names.Alias, t.index, lastErr)
}

// aliasIndices lists the indices the alias points at (none if it does not exist).
func (t *RebuildTarget) aliasIndices(ctx context.Context) ([]string, error) {
	res, err := t.client.PerformRequest(ctx, elastic.PerformRequestOptions{
		Method:       http.MethodGet,
		Path:         "/_alias/" + url.PathEscape(t.names.Alias),
		IgnoreErrors: []int{http.StatusNotFound},
	})
	if err != nil {
		return nil, fmt.Errorf("look up alias %s: %w", t.names.Alias, err)
	}
	if res.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(res.Body, &body); err != nil {
		return nil, fmt.Errorf("look up alias %s: %w", t.names.Alias, err)
	}
	out := make([]string, 0, len(body))
	for ix := range body {
		out = append(out, ix)
	}
	sort.Strings(out)
	return out, nil
}

// resetCheckpoint makes the checkpoint describe the index now served: its
// position is at least the highest position the fill folded in (a live
// indexer that was further already has a higher one, which stays) and its
// count is the fill's, as the old index's count went with it.
func (t *RebuildTarget) resetCheckpoint(ctx context.Context) error {
	now := t.now().UTC()
	f := t.fill
	script := elastic.NewScript(`if (params.position > ctx._source.position) { ctx._source.position = params.position }
ctx._source.events_applied = params.applied;
ctx._source.updated_at = params.updated_at;`).
		Params(map[string]any{"position": f.maxPos, "applied": f.applied, "updated_at": now.Format(time.RFC3339Nano)})
	_, err := t.client.Update().Index(t.names.CheckpointIndex).Id(searchdoc.Projection).Script(script).
		Upsert(searchdoc.Checkpoint{Projection: searchdoc.Projection, Position: f.maxPos, EventsApplied: f.applied, UpdatedAt: now}).
		RetryOnConflict(20).Do(ctx)
	if err != nil {
		return fmt.Errorf("update checkpoint: %w", err)
	}
	return nil
}

// Discard deletes the new index if the rebuild stopped before the swap, so
// that a retry need not wait for the heartbeat to go stale. After the swap
// the index is live and is kept.
func (t *RebuildTarget) Discard(ctx context.Context) error {
	if t.index == "" || t.swapped {
		return nil
	}
	// A bulk still under way would re-create the index after the delete.
	_ = t.fill.wait()
	if _, err := t.client.DeleteIndex(t.index).Do(ctx); err != nil && !elastic.IsNotFound(err) {
		return fmt.Errorf("discard %s: %w", t.index, err)
	}
	return nil
}

// FillStats are what the fill wrote.
type FillStats struct {
	Documents   int64 // orders created in the new index
	Events      int64 // order events folded in
	MaxPosition int64
	Writes      int64 // documents indexed (an order more than once if it left the cache)
	Lookups     int64 // orders read back from the index (not in the cache)
}

// Stats reports the fill so far.
func (t *RebuildTarget) Stats() FillStats {
	if t.fill == nil {
		return FillStats{}
	}
	f := t.fill
	return FillStats{Documents: f.created, Events: f.applied, MaxPosition: f.maxPos, Writes: atomic.LoadInt64(&f.writes), Lookups: f.lookups}
}

// cachedOrder is an order as the fill last folded it.
type cachedOrder struct {
	state order.State
	last  int64 // position of its last event
	dirty bool  // not written to the index yet
}

// writeChunk bounds the documents of one bulk request (a few MB).
const writeChunk = 5000

// fillSink folds the store's order events into the new index.
//
// The store hands events over in commit-safe order, which per stream is
// version order from 1, and nothing reads the new index before the swap. So
// the fill carries each order's state in memory and writes it once: when it
// reaches a final status (shipped, cancelled), when the cache overflows
// (every pending order is written and the cache starts over), or at the end
// (Swap flushes). An order that continues after leaving the cache is read
// back from the index (mget is real-time: no refresh needed). Writing an
// order once instead of once per batch matters because an order's events
// spread over many batches; the bulk of one batch also runs while the next
// batch is read from the store.
type fillSink struct {
	t        *RebuildTarget
	cache    map[uuid.UUID]*cachedOrder
	lastBeat time.Time
	inflight chan error // the bulk write under way, if any

	created, applied, maxPos, lookups, writes int64
}

func (f *fillSink) HandleBatch(ctx context.Context, batch []events.Envelope) error {
	var (
		ids    []uuid.UUID
		byID   = map[uuid.UUID][]events.Envelope{}
		lookup []uuid.UUID
	)
	for _, e := range batch {
		if e.StreamType != events.StreamOrder {
			continue
		}
		evs, seen := byID[e.StreamID]
		if !seen {
			ids = append(ids, e.StreamID)
			if _, ok := f.cache[e.StreamID]; !ok && e.Version > 1 {
				lookup = append(lookup, e.StreamID)
			}
		}
		byID[e.StreamID] = append(evs, e)
	}
	if len(lookup) > 0 {
		// The orders to read back may be in the bulk under way.
		if err := f.wait(); err != nil {
			return err
		}
		docs, err := mgetDocs(ctx, f.t.client, f.t.index, lookup, true)
		if err != nil {
			return err
		}
		f.lookups += int64(len(lookup))
		for id, d := range docs {
			s, err := toState(d.doc, d.version)
			if err != nil {
				return err
			}
			f.cache[id] = &cachedOrder{state: s, last: d.doc.LastPosition}
		}
	}
	var write []searchdoc.Order
	for _, id := range ids {
		cur := f.cache[id]
		if cur == nil {
			cur = &cachedOrder{}
		}
		for _, e := range byID[id] {
			switch {
			case e.Version <= cur.state.Version:
				continue
			case e.Version != cur.state.Version+1:
				return fmt.Errorf("fill: order %s at version %d, next event is %d: %w", id, cur.state.Version, e.Version, ErrStale)
			}
			if cur.state.Version == 0 {
				f.created++
			}
			cur.state = order.Evolve(cur.state, e)
			cur.last = e.Position
			cur.dirty = true
			f.maxPos = max(f.maxPos, e.Position)
			f.applied++
		}
		if cur.state.Status == order.StatusShipped || cur.state.Status == order.StatusCancelled {
			if cur.dirty {
				write = append(write, fromState(cur.state, cur.last))
			}
			delete(f.cache, id)
			continue
		}
		f.cache[id] = cur
	}
	if len(f.cache) > f.t.maxCached {
		write = append(write, f.pending()...)
		f.cache = map[uuid.UUID]*cachedOrder{}
	}
	if err := f.send(ctx, write); err != nil {
		return err
	}
	return f.beat(ctx)
}

// pending returns the documents of the orders not written yet and marks
// them written.
func (f *fillSink) pending() []searchdoc.Order {
	var out []searchdoc.Order
	for _, c := range f.cache {
		if c.dirty {
			out = append(out, fromState(c.state, c.last))
			c.dirty = false
		}
	}
	return out
}

// send waits for the bulk under way, then starts writing docs in the
// background.
func (f *fillSink) send(ctx context.Context, docs []searchdoc.Order) error {
	if err := f.wait(); err != nil {
		return err
	}
	if len(docs) == 0 {
		return nil
	}
	done := make(chan error, 1)
	f.inflight = done
	go func() { done <- f.write(ctx, docs) }()
	return nil
}

// wait returns the outcome of the bulk under way, if any.
func (f *fillSink) wait() error {
	if f.inflight == nil {
		return nil
	}
	err := <-f.inflight
	f.inflight = nil
	return err
}

// flush writes every pending order and waits until the index has them all.
func (f *fillSink) flush(ctx context.Context) error {
	if err := f.send(ctx, f.pending()); err != nil {
		return err
	}
	return f.wait()
}

// write indexes docs, each at its stream version, in bulks of writeChunk.
func (f *fillSink) write(ctx context.Context, docs []searchdoc.Order) error {
	for len(docs) > 0 {
		chunk := docs[:min(writeChunk, len(docs))]
		docs = docs[len(chunk):]
		bulk := f.t.client.Bulk().Index(f.t.index)
		for _, d := range chunk {
			bulk.Add(elastic.NewBulkIndexRequest().Id(d.OrderID).VersionType("external").Version(d.Version).Doc(d))
		}
		res, err := bulk.Do(ctx)
		if err != nil {
			return fmt.Errorf("bulk write %d orders to %s: %w", len(chunk), f.t.index, err)
		}
		// Nothing else writes this index, so a 409 can only be this very
		// version written before: success, as in the live model.
		if err := bulkError(res, ""); err != nil {
			return err
		}
		atomic.AddInt64(&f.writes, int64(len(chunk)))
	}
	return nil
}

// beat stamps the index as being filled, now and then.
func (f *fillSink) beat(ctx context.Context) error {
	now := f.t.now()
	if now.Sub(f.lastBeat) < heartbeatEvery {
		return nil
	}
	_, err := f.t.client.PutMapping().Index(f.t.index).
		BodyJson(map[string]any{"_meta": map[string]any{metaHeartbeat: now.UTC().Format(time.RFC3339Nano)}}).Do(ctx)
	if err != nil {
		return fmt.Errorf("heartbeat on %s: %w", f.t.index, err)
	}
	f.lastBeat = now
	return nil
}
