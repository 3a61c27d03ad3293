package benchmark

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestRunServe runs a small serve benchmark end to end: every number it
// reports is filled in and the table names them.
func TestRunServe(t *testing.T) {
	if testing.Short() {
		t.Skip("serves the shipped MNIST model")
	}
	r, err := RunServe(ServeOptions{Clients: 2, Steps: 2, Rounds: 2, Soak: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.BatchedRounds) != 2 || len(r.SerialRounds) != 2 || r.Batched <= 0 || r.Serial <= 0 || r.Ratio <= 0 ||
		r.NetworkRatio <= 0 || r.LoneMS <= 0 || r.DirectMS <= 0 || r.SoakImages == 0 || r.GoroutinesEnd == 0 {
		t.Errorf("incomplete result %+v", r)
	}
	if r.RSSStartMB <= 0 && strings.Contains(r.CPU, " ") { // Linux: /proc/self/status is there
		t.Errorf("no RSS in %+v", r)
	}
	var b bytes.Buffer
	r.WriteTable(&b)
	for _, want := range []string{"one request at a time", "2 requests at once", "lone client latency", "soak"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	if _, err := RunServe(ServeOptions{Clients: 0, Steps: 1, Rounds: 1}); err == nil {
		t.Error("0 clients accepted")
	}
}
