package searchmodel

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/olivere/elastic/v7"
)

// NewClient returns a client for the node at url. Sniffing is off because
// the node's advertised address is not always reachable from the client
// (containers); the start-up health check is off so that the process starts
// while Elasticsearch is still coming up (readiness reports it instead).
func NewClient(url string) (*elastic.Client, error) {
	client, err := elastic.NewClient(
		elastic.SetURL(url),
		elastic.SetSniff(false),
		elastic.SetHealthcheck(false),
		// Bounds a request to a node that accepted the connection and then
		// hung: the consumer's context has no deadline of its own.
		elastic.SetHttpClient(&http.Client{Timeout: 30 * time.Second}),
	)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch client for %s: %w", url, err)
	}
	return client, nil
}

// Ready reports whether the cluster answers and is not red.
func Ready(ctx context.Context, client *elastic.Client) error {
	res, err := client.ClusterHealth().Do(ctx)
	if err != nil {
		return fmt.Errorf("cluster health: %w", err)
	}
	if res.Status == "red" {
		return fmt.Errorf("cluster %s is red", res.ClusterName)
	}
	return nil
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
