// Package envconfigtest checks the services' FromEnv functions.
package envconfigtest

import (
	"strings"
	"testing"
)

// FromEnv sets each of names to env[name] (empty when absent, which the
// services read as unset), calls fromEnv and checks its error. With no
// wantErr it must succeed, and FromEnv returns its config and true; else it
// must fail with an error naming each of wantErr, and FromEnv returns false.
func FromEnv[C any](t *testing.T, fromEnv func() (C, error), names []string, env map[string]string, wantErr []string) (C, bool) {
	t.Helper()
	for _, name := range names {
		t.Setenv(name, env[name])
	}
	c, err := fromEnv()
	if len(wantErr) == 0 {
		if err != nil {
			t.Fatalf("FromEnv: %v", err)
		}
		return c, true
	}
	if err == nil {
		t.Fatal("FromEnv accepted an invalid environment")
	}
	for _, s := range wantErr {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %s", err, s)
		}
	}
	return c, false
}
