package main

import (
	"errors"
	"strings"
	"testing"
)

// TestServeFlags: out-of-range flags are usage errors (exit status 2) and
// a model that does not load is an error, before anything listens.
func TestServeFlags(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		usage bool
		want  string
	}{
		{[]string{"--max-batch", "0"}, true, "--max-batch must be ≥ 1"},
		{[]string{"--queue", "-1"}, true, "--queue must be ≥ 1"},
		{[]string{"--shutdown-timeout", "0s"}, true, "--shutdown-timeout must be positive"},
		{[]string{"--models", " , "}, true, "--models names no model"},
		{[]string{"--addr", "localhost"}, true, `--addr "localhost"`},
		{[]string{"--models", "/nonexistent/model.safetensors"}, false, "no such file"},
	} {
		err := runServe(tc.args)
		if err == nil || errors.Is(err, errUsage) != tc.usage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("serve %v: %v, want a usage error %v containing %q", tc.args, err, tc.usage, tc.want)
		}
	}
}
