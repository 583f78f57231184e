// Package searchmodel is the search-indexer's read model: one Elasticsearch
// document per order (searchdoc.Order), written through an alias with
// external versioning so that the document's _version is always the order
// stream's version, plus a checkpoint document for GET /v1/projections.
//
// Exactly-once effect comes from two facts. The fold is deterministic, so the
// document at version v is the same whichever replica computed it. And
// Elasticsearch accepts an externally versioned write only if its version is
// higher than the stored one, so a stale or duplicate write is refused (409)
// rather than applied: that refusal is the atomic check-and-set that
// consumer.Model requires, and the model treats it as success.
package searchmodel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/olivere/elastic/v7"

	"github.com/escqrs/platform/internal/consumer"
	"github.com/escqrs/platform/internal/domain/order"
	"github.com/escqrs/platform/internal/platform/elasticclient"
	"github.com/escqrs/platform/internal/platform/postgres"
	"github.com/escqrs/platform/internal/readmodel/searchdoc"
	"github.com/escqrs/platform/pkg/events"
)

// IgnoredVersion is what Versions reports for a stream the model does not
// index (an account). The Sequencer only ever sees stream ids, from both
// topics; if it were told 0 for an account, every account event past
// version 1 would look like a gap and the Sequencer would read the whole
// missing history of that account from the event store, only for Apply to
// drop it. The largest version makes every account event a duplicate, which
// the Sequencer skips without touching the store or the index.
const IgnoredVersion int64 = math.MaxInt64

// StreamTypeResolver tells the type of streams the index has no document
// for. Versions only receives stream ids, and an id absent from the index is
// either a new order or an account.
type StreamTypeResolver interface {
	StreamTypes(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]events.StreamType, error)
}

// Option configures a Model.
type Option func(*Model)

// WithStreamTypes lets Versions recognise account streams it has not seen
// before (see IgnoredVersion). Without it, the model learns account ids only
// when account events reach Apply, after one gap heal per account.
func WithStreamTypes(r StreamTypeResolver) Option { return func(m *Model) { m.types = r } }

// WithClock replaces time.Now for the checkpoint's updated_at.
func WithClock(now func() time.Time) Option { return func(m *Model) { m.now = now } }

// WithProjection names the checkpoint document (default searchdoc.Projection).
func WithProjection(name string) Option { return func(m *Model) { m.projection = name } }

// WithCheckpointEvery writes the checkpoint document at most once per
// interval (0, the default: with every batch); a batch in between adds its
// position and count to the next write, which a timer makes within the
// interval if no batch does. Every checkpoint update is a read-modify-write
// of one document, and Elasticsearch refreshes the checkpoint index before
// each such real-time read of a changed document: per batch, at hundreds of
// batches a second, that is a large share of the cluster's work for a
// figure (GET /v1/projections) nobody needs more than once a second.
func WithCheckpointEvery(d time.Duration) Option { return func(m *Model) { m.checkpointEvery = d } }

// maxKnownAccounts bounds the memory of account ids; past it the set starts
// over and forgotten ids are resolved again.
const maxKnownAccounts = 200_000

// Model is a consumer.Model over Elasticsearch. It is safe for concurrent use.
type Model struct {
	client          *elastic.Client
	alias           string
	checkpointIndex string
	projection      string
	types           StreamTypeResolver
	now             func() time.Time

	mu       sync.Mutex
	accounts map[uuid.UUID]struct{}
	// fetched holds the documents the last Versions read, for the Apply
	// of the same batch: one mget per batch instead of two.
	fetched map[uuid.UUID]stored

	checkpointEvery time.Duration
	cpMu            sync.Mutex
	pending         pendingCheckpoint
	lastCheckpoint  time.Time
	cpTimer         *time.Timer
}

// pendingCheckpoint is what batches applied since the last checkpoint
// write add to it.
type pendingCheckpoint struct {
	position, applied int64
	dirty             bool
}

var (
	_ consumer.Model    = (*Model)(nil)
	_ consumer.Optimist = (*Model)(nil)
)

// New returns a model writing order documents through alias and its
// checkpoint to checkpointIndex; EnsureIndices must have prepared both.
func New(client *elastic.Client, alias, checkpointIndex string, opts ...Option) *Model {
	m := &Model{client: client, alias: alias, checkpointIndex: checkpointIndex, projection: searchdoc.Projection,
		now: time.Now, accounts: map[uuid.UUID]struct{}{}}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Versions returns the stored version of each order stream (0 when it has no
// document) and IgnoredVersion for account streams.
func (m *Model) Versions(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]int64, error) {
	out := make(map[uuid.UUID]int64, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	docs, err := m.mget(ctx, ids, true)
	if err != nil {
		return nil, err
	}
	var unknown []uuid.UUID
	m.mu.Lock()
	m.fetched = make(map[uuid.UUID]stored, len(ids))
	for _, id := range ids {
		m.fetched[id] = docs[id] // the zero stored: no document
	}
	for _, id := range ids {
		if d, ok := docs[id]; ok {
			out[id] = d.version
			continue
		}
		if _, ok := m.accounts[id]; ok {
			out[id] = IgnoredVersion
			continue
		}
		out[id] = 0
		unknown = append(unknown, id)
	}
	m.mu.Unlock()
	if len(unknown) == 0 || m.types == nil {
		return out, nil
	}
	types, err := m.types.StreamTypes(ctx, unknown)
	if err != nil {
		return nil, fmt.Errorf("resolve stream types: %w", err)
	}
	var accounts []uuid.UUID
	for _, id := range unknown {
		if types[id] == events.StreamAccount {
			out[id] = IgnoredVersion
			accounts = append(accounts, id)
		}
	}
	m.remember(accounts)
	return out, nil
}

func (m *Model) remember(accounts []uuid.UUID) {
	if len(accounts) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.accounts)+len(accounts) > maxKnownAccounts {
		m.accounts = map[uuid.UUID]struct{}{}
	}
	for _, id := range accounts {
		m.accounts[id] = struct{}{}
	}
}

// streamBatch is one order stream's events in a batch.
type streamBatch struct {
	id  uuid.UUID
	evs []events.Envelope
	at  []int // where each of evs is in the batch
}

// orderStreams groups the order events of evs by stream, the streams in the
// order of their first event.
func orderStreams(evs []events.Envelope) []*streamBatch {
	var streams []*streamBatch
	byID := map[uuid.UUID]*streamBatch{}
	for i, e := range evs {
		if e.StreamType != events.StreamOrder {
			continue
		}
		sb := byID[e.StreamID]
		if sb == nil {
			sb = &streamBatch{id: e.StreamID}
			byID[e.StreamID] = sb
			streams = append(streams, sb)
		}
		sb.evs, sb.at = append(sb.evs, e), append(sb.at, i)
	}
	return streams
}

// Apply folds the order events of evs onto the current documents and writes
// every changed document, plus the checkpoint, in one bulk request. Account
// events are ignored. Events at or below a document's current version are
// skipped (another replica got there first), so a batch may be applied any
// number of times, concurrently, with the same result.
func (m *Model) Apply(ctx context.Context, evs []events.Envelope) error {
	if len(evs) == 0 {
		return nil
	}
	var (
		streams  = orderStreams(evs)
		accounts []uuid.UUID
		maxPos   int64
	)
	for _, e := range evs {
		maxPos = max(maxPos, e.Position)
		if e.StreamType == events.StreamAccount {
			accounts = append(accounts, e.StreamID)
		}
	}
	m.remember(accounts)

	current, err := m.current(ctx, streams)
	if err != nil {
		return err
	}
	bulk := m.client.Bulk()
	var applied int64
	for _, sb := range streams {
		cur := current[sb.id]
		doc, n, err := fold(cur.doc, cur.version, sb.evs)
		if err != nil {
			return err
		}
		if n == 0 {
			continue
		}
		applied += int64(n)
		bulk.Add(m.indexRequest(doc))
	}
	cp, writeCheckpoint := m.takeCheckpoint(maxPos, applied)
	if writeCheckpoint {
		bulk.Add(m.checkpointUpdate(cp.position, cp.applied))
	}
	if bulk.NumberOfActions() == 0 {
		return nil
	}
	// No refresh here: the index refreshes on its own, and mget is
	// real-time, so the next batch sees these writes regardless.
	res, err := bulk.Do(ctx)
	if err != nil {
		if writeCheckpoint {
			m.addPending(cp)
		}
		return fmt.Errorf("bulk write %d actions: %w", bulk.NumberOfActions(), err)
	}
	if err := m.checkBulk(res); err != nil {
		return err
	}
	return m.checkDeleted(ctx, conflicts(res, m.checkpointIndex))
}

// indexRequest writes doc unless its version or a newer one is indexed
// (a 409, which checkBulk counts as success).
func (m *Model) indexRequest(doc searchdoc.Order) *elastic.BulkIndexRequest {
	return elastic.NewBulkIndexRequest().Index(m.alias).Id(doc.OrderID).
		VersionType("external").Version(doc.Version).Doc(doc)
}

// TryApply writes, without reading anything first, the document of every
// order stream of which evs holds just its first event, and reports which
// events it applied. Such a document needs nothing stored to fold onto, and
// its external version (1) makes Elasticsearch refuse it (409) when any
// version of the order is indexed already: a redelivery, which the write
// then leaves as it was. So an event reported applied was applied once,
// and new orders, the bulk of the writes, cost one round trip (the bulk)
// instead of two. Everything else (later events, a new order's first
// events together, account events) it leaves to Versions and Apply, which
// know what is stored: a batch [1, 2] on a document at 1 must count 2 alone.
func (m *Model) TryApply(ctx context.Context, evs []events.Envelope) ([]bool, error) {
	done := make([]bool, len(evs))
	bulk := m.client.Bulk()
	var written []*streamBatch
	for _, sb := range orderStreams(evs) {
		if len(sb.evs) != 1 || sb.evs[0].Version != 1 {
			continue
		}
		doc, _, err := fold(searchdoc.Order{}, 0, sb.evs)
		if err != nil {
			return nil, err
		}
		bulk.Add(m.indexRequest(doc))
		written = append(written, sb)
	}
	if len(written) == 0 {
		return done, nil
	}
	res, err := bulk.Do(ctx)
	if err != nil {
		return nil, fmt.Errorf("bulk write %d new orders: %w", len(written), err)
	}
	if err := m.checkBulk(res); err != nil {
		return nil, err
	}
	refused := map[uuid.UUID]bool{}
	for _, id := range conflicts(res, m.checkpointIndex) {
		refused[id] = true
	}
	var applied, position int64
	for _, sb := range written {
		if refused[sb.id] {
			continue
		}
		for _, i := range sb.at {
			done[i] = true
			applied++
			position = max(position, evs[i].Position)
		}
	}
	if applied == 0 {
		return done, nil
	}
	// The count is known only now, after the write: a checkpoint that is
	// due goes out on its own (at most once per checkpointEvery).
	if cp, due := m.takeCheckpoint(position, applied); due {
		if err := m.writeCheckpoint(ctx, cp); err != nil {
			return nil, err
		}
	}
	return done, nil
}

// ErrDeleted means a write was refused (409) for a document that does not
// exist: it was deleted (by hand) and Elasticsearch still keeps the deleted
// version, one above the last indexed one, for index.gc_deletes (60s by
// default), refusing any lower external version. Treating that 409 as "a
// newer version is stored" would lose the document silently, so the model
// reports it instead; it is transient: once the tombstone is pruned, a
// retry writes the document again from the stream's full history.
var ErrDeleted = errors.New("order document deleted in the index; its tombstone refuses the write until index.gc_deletes passes")

// checkDeleted reads the documents whose write was refused with 409 and
// fails if any is absent. A 409 is rare (replicas overlapping, a rebuild's
// catch-up), so the extra real-time mget costs nothing in the common case.
func (m *Model) checkDeleted(ctx context.Context, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	docs, err := mgetDocs(ctx, m.client, m.alias, ids, false)
	if err != nil {
		return err
	}
	var missing []string
	for _, id := range ids {
		if _, ok := docs[id]; !ok {
			missing = append(missing, id.String())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("orders %s: %w", strings.Join(missing, ", "), ErrDeleted)
	}
	return nil
}

// conflicts returns the ids of the order documents whose index action was
// refused with 409.
func conflicts(res *elastic.BulkResponse, checkpointIndex string) []uuid.UUID {
	if !res.Errors {
		return nil
	}
	var ids []uuid.UUID
	for _, item := range res.Items {
		r, ok := item["index"]
		if !ok || r.Status != http.StatusConflict || r.Index == checkpointIndex {
			continue
		}
		if id, err := uuid.Parse(r.Id); err == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// current returns the stored document of each stream: as the batch's
// Versions call read it, or read afresh when that read is not there (another
// caller's Versions came between) or is older than the batch's first event
// needs. A document read a moment ago is as good as one read now: folding
// the events after its version gives the same document, and a write that
// another replica has overtaken meanwhile is refused by its version.
func (m *Model) current(ctx context.Context, streams []*streamBatch) (map[uuid.UUID]stored, error) {
	out := make(map[uuid.UUID]stored, len(streams))
	var missing []uuid.UUID
	m.mu.Lock()
	for _, sb := range streams {
		if d, ok := m.fetched[sb.id]; ok && d.version >= sb.evs[0].Version-1 {
			out[sb.id] = d
		} else {
			missing = append(missing, sb.id)
		}
	}
	m.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	docs, err := m.mget(ctx, missing, true)
	if err != nil {
		return nil, err
	}
	for _, id := range missing {
		out[id] = docs[id]
	}
	return out, nil
}

// takeCheckpoint adds a batch to the pending checkpoint and reports whether
// to write it now; if not, a timer writes it within checkpointEvery.
func (m *Model) takeCheckpoint(position, applied int64) (pendingCheckpoint, bool) {
	m.cpMu.Lock()
	defer m.cpMu.Unlock()
	m.pending.position = max(m.pending.position, position)
	m.pending.applied += applied
	m.pending.dirty = true
	since := m.now().Sub(m.lastCheckpoint)
	if m.checkpointEvery <= 0 || since >= m.checkpointEvery {
		cp := m.pending
		m.pending, m.lastCheckpoint = pendingCheckpoint{}, m.now()
		return cp, true
	}
	if m.cpTimer == nil {
		m.cpTimer = time.AfterFunc(m.checkpointEvery-since, m.flushOnTimer)
	}
	return pendingCheckpoint{}, false
}

// addPending puts back a checkpoint whose write failed.
func (m *Model) addPending(cp pendingCheckpoint) {
	m.cpMu.Lock()
	defer m.cpMu.Unlock()
	m.pending.position = max(m.pending.position, cp.position)
	m.pending.applied += cp.applied
	m.pending.dirty = true
}

func (m *Model) flushOnTimer() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m.cpMu.Lock()
	m.cpTimer = nil
	m.cpMu.Unlock()
	if err := m.FlushCheckpoint(ctx); err != nil {
		m.cpMu.Lock()
		if m.cpTimer == nil { // try again later
			m.cpTimer = time.AfterFunc(max(m.checkpointEvery, time.Second), m.flushOnTimer)
		}
		m.cpMu.Unlock()
	}
}

// FlushCheckpoint writes the pending checkpoint, if any: on a timer, and at
// shutdown so that the last batches' count is not lost.
func (m *Model) FlushCheckpoint(ctx context.Context) error {
	m.cpMu.Lock()
	cp := m.pending
	m.pending, m.lastCheckpoint = pendingCheckpoint{}, m.now()
	m.cpMu.Unlock()
	if !cp.dirty {
		return nil
	}
	return m.writeCheckpoint(ctx, cp)
}

// writeCheckpoint writes cp on its own, or puts it back to be written later.
func (m *Model) writeCheckpoint(ctx context.Context, cp pendingCheckpoint) error {
	res, err := m.client.Bulk().Add(m.checkpointUpdate(cp.position, cp.applied)).Do(ctx)
	if err == nil {
		err = m.checkBulk(res)
	}
	if err != nil {
		m.addPending(cp)
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return nil
}

// checkpointUpdate raises the checkpoint's position (never lowers it: a
// replica with an older batch may write after one with a newer batch) and
// adds this batch's count.
func (m *Model) checkpointUpdate(position, applied int64) *elastic.BulkUpdateRequest {
	now := m.now().UTC()
	script := elastic.NewScript(`if (params.position > ctx._source.position) { ctx._source.position = params.position }
ctx._source.events_applied += params.applied;
ctx._source.updated_at = params.updated_at;`).
		Params(map[string]any{"position": position, "applied": applied, "updated_at": now.Format(time.RFC3339Nano)})
	return elastic.NewBulkUpdateRequest().Index(m.checkpointIndex).Id(m.projection).
		Script(script).
		Upsert(searchdoc.Checkpoint{Projection: m.projection, Position: position, EventsApplied: applied, UpdatedAt: now}).
		// Every replica updates this one document; let Elasticsearch retry
		// the read-modify-write rather than fail the batch.
		RetryOnConflict(20)
}

// checkBulk turns the item results into one error. A 409 on an order
// document means that version or a newer one is already stored, which is
// the outcome this write wanted.
func (m *Model) checkBulk(res *elastic.BulkResponse) error {
	return bulkError(res, m.checkpointIndex)
}

// bulkError is checkBulk for any index: a 409 on an index action outside
// checkpointIndex is success.
func bulkError(res *elastic.BulkResponse, checkpointIndex string) error {
	if !res.Errors {
		return nil
	}
	var errs []error
	for _, item := range res.Items {
		for action, r := range item {
			if r.Error == nil && r.Status < 300 {
				continue
			}
			if r.Status == http.StatusConflict && r.Index != checkpointIndex && action == "index" {
				continue
			}
			errs = append(errs, &ItemError{Index: r.Index, ID: r.Id, Status: r.Status, Details: r.Error})
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("bulk write: %d failed items: %w", len(errs), errors.Join(errs...))
}

// ItemError is the failure of one item of a bulk request.
type ItemError struct {
	Index   string
	ID      string
	Status  int
	Details *elastic.ErrorDetails
}

func (e *ItemError) Error() string {
	if e.Details != nil {
		return fmt.Sprintf("%s/%s: status %d: %s: %s", e.Index, e.ID, e.Status, e.Details.Type, e.Details.Reason)
	}
	return fmt.Sprintf("%s/%s: status %d", e.Index, e.ID, e.Status)
}

// ErrStale means a document is older than the events handed to Apply
// (e.g. the alias was moved to an index that is behind). It is retried: the
// Sequencer then reads the versions again and heals the gap from the store.
var ErrStale = errors.New("document is behind the events to apply")

// fold applies the events above version onto doc with the Order aggregate's
// own Evolve, so the index agrees with the write side (total = items + tax,
// the status of the last event). It returns the new document and how many
// events it applied.
func fold(doc searchdoc.Order, version int64, evs []events.Envelope) (searchdoc.Order, int, error) {
	s, err := toState(doc, version)
	if err != nil {
		return doc, 0, err
	}
	n := 0
	var last int64
	for _, e := range evs {
		switch {
		case e.Version <= s.Version:
			continue
		case e.Version > s.Version+1:
			return doc, 0, fmt.Errorf("order %s at version %d, next event is %d: %w", e.StreamID, s.Version, e.Version, ErrStale)
		}
		s = order.Evolve(s, e)
		last = e.Position
		n++
	}
	if n == 0 {
		return doc, 0, nil
	}
	return fromState(s, last), n, nil
}

func toState(d searchdoc.Order, version int64) (order.State, error) {
	s := order.State{Status: order.Status(d.Status), Items: d.Items, TaxCents: d.TaxCents, TotalCents: d.TotalCents,
		Currency: d.Currency, Version: version, PlacedAt: d.PlacedAt, UpdatedAt: d.UpdatedAt}
	if version == 0 {
		return s, nil
	}
	var err error
	if s.ID, err = uuid.Parse(d.OrderID); err != nil {
		return s, fmt.Errorf("document order_id %q: %w", d.OrderID, err)
	}
	if d.CustomerID != "" {
		if s.CustomerID, err = uuid.Parse(d.CustomerID); err != nil {
			return s, fmt.Errorf("order %s customer_id %q: %w", d.OrderID, d.CustomerID, err)
		}
	}
	return s, nil
}

func fromState(s order.State, lastPosition int64) searchdoc.Order {
	d := searchdoc.Order{
		OrderID: s.ID.String(), Status: string(s.Status), Items: s.Items,
		TotalCents: s.TotalCents, TaxCents: s.TaxCents, Currency: s.Currency, Version: s.Version,
		LastPosition: lastPosition, PlacedAt: s.PlacedAt.UTC(), UpdatedAt: s.UpdatedAt.UTC(),
	}
	if s.CustomerID != uuid.Nil {
		d.CustomerID = s.CustomerID.String()
	}
	for _, it := range s.Items {
		d.ItemNames = append(d.ItemNames, it.Name)
		d.SKUs = append(d.SKUs, it.SKU)
	}
	return d
}

// stored is one document as read by mget.
type stored struct {
	version int64
	doc     searchdoc.Order
}

// mget reads the documents of ids through the alias in one request. mget is
// real-time: it sees every acknowledged write, refreshed or not.
func (m *Model) mget(ctx context.Context, ids []uuid.UUID, source bool) (map[uuid.UUID]stored, error) {
	return mgetDocs(ctx, m.client, m.alias, ids, source)
}

// mgetDocs reads the documents of ids from index (or alias) in one request.
func mgetDocs(ctx context.Context, client *elastic.Client, index string, ids []uuid.UUID, source bool) (map[uuid.UUID]stored, error) {
	out := make(map[uuid.UUID]stored, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	svc := client.Mget()
	for _, id := range ids {
		svc.Add(elastic.NewMultiGetItem().Index(index).Id(id.String()).FetchSource(elastic.NewFetchSourceContext(source)))
	}
	res, err := svc.Do(ctx)
	if err != nil {
		return nil, fmt.Errorf("mget %d orders from %s: %w", len(ids), index, err)
	}
	if len(res.Docs) != len(ids) {
		return nil, fmt.Errorf("mget %d orders from %s: got %d results", len(ids), index, len(res.Docs))
	}
	for i, d := range res.Docs {
		if d.Error != nil {
			return nil, fmt.Errorf("mget order %s from %s: %w", ids[i], index, &elastic.Error{Status: statusOf(d.Error), Details: d.Error})
		}
		if !d.Found {
			continue
		}
		if d.Version == nil {
			return nil, fmt.Errorf("mget order %s from %s: no _version", ids[i], index)
		}
		s := stored{version: *d.Version}
		if source {
			if err := json.Unmarshal(d.Source, &s.doc); err != nil {
				return nil, fmt.Errorf("decode order %s: %w", ids[i], err)
			}
		}
		out[ids[i]] = s
	}
	return out, nil
}

// statusOf maps the per-document error of an mget (which carries no status)
// to the one Elasticsearch would answer for a single get.
func statusOf(d *elastic.ErrorDetails) int {
	if d.Type == "index_not_found_exception" {
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

// Transient reports failures that mean Elasticsearch (or the event store,
// for stream types) is unreachable or overloaded, so the consumer retries
// without end instead of dead-lettering events: connection errors, 429,
// 5xx, and a missing index (an alias deleted by hand or a rebuild gone
// wrong is an operator problem, not a poison event), a document deleted by
// hand whose tombstone still refuses writes (ErrDeleted), a checkpoint update
// that lost too many races, and an event store that is down or not yet
// migrated.
func (m *Model) Transient(err error) bool {
	if err == nil {
		return false
	}
	if elasticclient.Unavailable(err) || errors.Is(err, ErrDeleted) {
		return true
	}
	// Stream types come from the event store: an unavailable store and one
	// not migrated yet (the projector started first) both pass.
	if postgres.Unavailable(err) || postgres.UndefinedTable(err) {
		return true
	}
	transientStatus := func(status int, d *elastic.ErrorDetails) bool {
		return elasticclient.UnavailableStatus(status) || (d != nil && d.Type == "index_not_found_exception")
	}
	var ee *elastic.Error
	if errors.As(err, &ee) && transientStatus(ee.Status, ee.Details) {
		return true
	}
	// errors.As finds only the first ItemError of a joined error; a batch
	// is transient if any item is (the others are retried along with it).
	var found bool
	walk(err, func(e error) {
		ie, ok := e.(*ItemError)
		// A 409 on the checkpoint means replicas kept racing for it past
		// RetryOnConflict: contention, which passes.
		if ok && (transientStatus(ie.Status, ie.Details) || (ie.Status == http.StatusConflict && ie.Index == m.checkpointIndex)) {
			found = true
		}
	})
	return found
}

// walk calls fn on err and every error it wraps, through joins.
func walk(err error, fn func(error)) {
	if err == nil {
		return
	}
	fn(err)
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			walk(e, fn)
		}
	case interface{ Unwrap() error }:
		walk(u.Unwrap(), fn)
	}
}

// errorType is Elasticsearch's error type ("resource_already_exists_exception"...) of err, or "".
func errorType(err error) string {
	var ee *elastic.Error
	if errors.As(err, &ee) && ee.Details != nil {
		return ee.Details.Type
	}
	return ""
}
