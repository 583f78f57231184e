package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/escqrs/platform/services/query-api/internal/server"
)

// TestOpenAPIMatchesRoutes keeps api/openapi-query.yaml and the router in
// step: every route is documented as a GET, and every documented path is served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	spec, err := os.ReadFile("../../../../api/openapi-query.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Top-level entries under "paths:" are indented by two spaces; their
	// operations by four.
	pathRe, opRe := regexp.MustCompile(`^  (/\S*):\s*$`), regexp.MustCompile(`^    (get|put|post|patch|delete):\s*$`)
	documented := map[string][]string{}
	inPaths, current := false, ""
	for _, line := range strings.Split(string(spec), "\n") {
		switch {
		case line == "paths:":
			inPaths = true
		case inPaths && line != "" && !strings.HasPrefix(line, " "):
			inPaths = false
		case inPaths && pathRe.MatchString(line):
			current = pathRe.FindStringSubmatch(line)[1]
			documented[current] = nil
		case inPaths && current != "" && opRe.MatchString(line):
			documented[current] = append(documented[current], strings.ToUpper(opRe.FindStringSubmatch(line)[1]))
		}
	}
	// server.New connects lazily: no engine is needed to list the routes.
	srv, err := server.New(context.Background(), configFor("postgres://nobody@127.0.0.1:1/none", "redis://127.0.0.1:1/0", "http://127.0.0.1:1"),
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	served := map[string][]string{}
	err = chi.Walk(srv.Handler().(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		served[route] = append(served[route], method)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for route, methods := range served {
		if slices.Contains(methods, http.MethodConnect) {
			methods = []string{http.MethodGet} // mounted with Handle (any method), as /metrics is; documented for GET
		}
		if doc, ok := documented[route]; !ok || !slices.Equal(doc, methods) {
			t.Errorf("route %s %v: documented as %v", route, methods, doc)
		}
	}
	for path := range documented {
		if _, ok := served[path]; !ok {
			t.Errorf("documented path %s is not served", path)
		}
	}
	if len(served) < 14 {
		t.Fatalf("only %d routes served", len(served))
	}
}
