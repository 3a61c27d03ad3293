package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestApprox(t *testing.T) {
	for d, want := range map[time.Duration]string{
		200 * time.Millisecond: "≈ 1 s",
		40 * time.Second:       "≈ 40 s",
		25 * time.Minute:       "≈ 25 min",
		89 * time.Minute:       "≈ 89 min",
		230 * time.Minute:      "≈ 3.8 h",
	} {
		if got := approx(d); got != want {
			t.Errorf("approx(%s) = %q, want %q", d, got, want)
		}
	}
}

// slowNet takes a fixed time per evaluation, whatever the batch.
type slowNet struct {
	per   time.Duration
	calls int
}

func (s *slowNet) Predict(out, xt []float32, t []int) {
	s.calls++
	time.Sleep(s.per)
}

func TestAnnounce(t *testing.T) {
	var buf bytes.Buffer
	old := estimateStderr
	estimateStderr = &buf
	t.Cleanup(func() { estimateStderr = old })

	net := &slowNet{per: 2 * time.Millisecond}
	if _, ok := estimatePasses(net, measureFrom-1, 4, 8, 8, 0); ok || net.calls != 0 {
		t.Errorf("a short job was measured (%d calls)", net.calls)
	}
	e, ok := estimatePasses(net, 100_000, 4, 8, 8, 0)
	if !ok || net.calls != 3 || e.perPass < 2*time.Millisecond || e.perPass > 50*time.Millisecond {
		t.Fatalf("measured %v per pass in %d calls", e.perPass, net.calls)
	}
	if !announce("sampling 7 images", e, "--fast takes "+approx(e.scaled(10))) {
		t.Fatal("a job of 100 000 passes of ≥ 2 ms was not announced")
	}
	line := buf.String()
	if !strings.HasPrefix(line, "sampling 7 images: ≈ ") || !strings.Contains(line, " on ") ||
		!strings.Contains(line, "; --fast takes ≈ 1 s") || strings.Count(line, "\n") != 1 {
		t.Errorf("announcement %q", line)
	}
	buf.Reset()
	if announce("quick", workEstimate{passes: 10, perPass: time.Millisecond}, "") || buf.Len() != 0 {
		t.Errorf("a 10 ms job was announced: %q", buf.String())
	}
}
