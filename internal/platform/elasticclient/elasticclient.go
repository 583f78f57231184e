// Package elasticclient holds what every component that talks to
// Elasticsearch shares: the client settings, the readiness check, and the
// classification of errors that mean the cluster is unavailable.
package elasticclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/escqrs/platform/internal/platform/neterr"
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

// Unavailable reports whether err means the cluster could not be reached,
// is overloaded (429) or failing (5xx), or did not answer in time (408),
// rather than that the request is wrong.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, elastic.ErrNoClient) || elastic.IsConnErr(err) || neterr.Is(err) {
		return true
	}
	var ee *elastic.Error
	return errors.As(err, &ee) && UnavailableStatus(ee.Status)
}

// UnavailableStatus reports the HTTP statuses of a cluster that cannot serve
// for now.
func UnavailableStatus(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500
}
