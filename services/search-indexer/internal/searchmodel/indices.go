package searchmodel

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/escqrs/platform/internal/readmodel/searchdoc"
)

// Names are the Elasticsearch names the indexer uses. Production uses
// DefaultNames; tests use unique names so that parallel packages sharing one
// node never see each other's documents.
type Names struct {
	// Alias is what the indexer writes through and the query API reads.
	Alias string
	// FirstIndex is the physical index created behind Alias when the alias
	// does not exist yet.
	FirstIndex string
	// CheckpointIndex holds the checkpoint document.
	CheckpointIndex string
}

// DefaultNames are the names of the searchdoc contract.
func DefaultNames() Names {
	return Names{Alias: searchdoc.Alias, FirstIndex: searchdoc.FirstIndex, CheckpointIndex: searchdoc.CheckpointIndex}
}

// PrefixedNames are DefaultNames under prefix (SEARCH_INDEX_PREFIX), so that
// several deployments or test runs can share one cluster.
func PrefixedNames(prefix string) Names {
	n := DefaultNames()
	return Names{Alias: prefix + n.Alias, FirstIndex: prefix + n.FirstIndex, CheckpointIndex: prefix + n.CheckpointIndex}
}

// EnsureIndices prepares the indices the model writes to. If names.Alias does
// not exist, it creates names.FirstIndex with searchdoc.Mapping and the alias
// as its write index, in one request so that no reader can see the index
// without the alias. It creates names.CheckpointIndex if it is missing. An
// existing alias is left alone, whatever index it points at: a rebuild may
// have moved it. Replicas starting at the same time may all call it.
func EnsureIndices(ctx context.Context, client *elastic.Client, names Names) error {
	exists, err := aliasExists(ctx, client, names.Alias)
	if err != nil {
		return err
	}
	if !exists {
		if err := createFirstIndex(ctx, client, names); err != nil {
			return err
		}
	}
	_, err = client.CreateIndex(names.CheckpointIndex).Body(searchdoc.CheckpointMapping).Do(ctx)
	if err != nil && !alreadyExists(err) {
		return fmt.Errorf("create checkpoint index %s: %w", names.CheckpointIndex, err)
	}
	return nil
}

func aliasExists(ctx context.Context, client *elastic.Client, alias string) (bool, error) {
	res, err := client.PerformRequest(ctx, elastic.PerformRequestOptions{
		Method:       http.MethodHead,
		Path:         "/_alias/" + url.PathEscape(alias),
		IgnoreErrors: []int{http.StatusNotFound},
	})
	if err != nil {
		return false, fmt.Errorf("look up alias %s: %w", alias, err)
	}
	return res.StatusCode == http.StatusOK, nil
}

func createFirstIndex(ctx context.Context, client *elastic.Client, names Names) error {
	var body map[string]json.RawMessage
	if err := json.Unmarshal([]byte(searchdoc.Mapping), &body); err != nil {
		return fmt.Errorf("searchdoc.Mapping: %w", err)
	}
	aliases, err := json.Marshal(map[string]any{names.Alias: map[string]any{"is_write_index": true}})
	if err != nil {
		return err
	}
	body["aliases"] = aliases
	_, err = client.CreateIndex(names.FirstIndex).BodyJson(body).Do(ctx)
	if err == nil {
		return nil
	}
	if !alreadyExists(err) {
		return fmt.Errorf("create index %s: %w", names.FirstIndex, err)
	}
	// The index exists: another replica created it (alias included) a moment
	// ago, or an earlier start died between the two. Adding an alias that is
	// already there is a no-op, so this converges either way.
	_, err = client.Alias().Action(elastic.NewAliasAddAction(names.Alias).Index(names.FirstIndex).IsWriteIndex(true)).Do(ctx)
	if err != nil {
		return fmt.Errorf("point alias %s at %s: %w", names.Alias, names.FirstIndex, err)
	}
	return nil
}

func alreadyExists(err error) bool {
	return errorType(err) == "resource_already_exists_exception"
}

// WaitEnsureIndices runs EnsureIndices until it succeeds, retrying while
// Elasticsearch is unreachable or unhealthy, so that replicas can start
// before the node does. Other errors (a bad mapping, a name clash) are
// returned at once.
func WaitEnsureIndices(ctx context.Context, log *slog.Logger, client *elastic.Client, names Names) error {
	probe := &Model{checkpointIndex: names.CheckpointIndex}
	backoff := 500 * time.Millisecond
	for {
		err := EnsureIndices(ctx, client, names)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !probe.Transient(err) {
			return err
		}
		log.Warn("waiting for elasticsearch", "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
