package progress

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeClock advances by step on every reading.
type fakeClock struct {
	t    time.Time
	step time.Duration
}

func (c *fakeClock) now() time.Time {
	c.t = c.t.Add(c.step)
	return c.t
}

// TestProgressLines: a display that is not on a terminal prints plain
// lines — the first unit at once, then one per interval, then the last —
// with no carriage returns, and nothing at all when quiet.
func TestProgressLines(t *testing.T) {
	cases := []struct {
		name      string
		total     int
		begin     int // units done before the display started (a resumed run)
		adds      int
		tick      time.Duration // clock advance per reading
		desc      string
		detail    string
		wantLines []string
	}{
		{
			name: "training", total: 30, adds: 30, tick: time.Second, detail: "loss 0.0312 · 32.0 img/s",
			wantLines: []string{
				// The clock reads once at New (t=1 s), once per Add and once at
				// Finish (t=32 s, elapsed 31 s).
				"step 1/30 (3%) · 1.00 step/s · elapsed 1s · ETA 29s · loss 0.0312 · 32.0 img/s",
				"step 11/30 (36%) · 1.00 step/s · elapsed 11s · ETA 19s · loss 0.0312 · 32.0 img/s",
				"step 21/30 (70%) · 1.00 step/s · elapsed 21s · ETA 9s · loss 0.0312 · 32.0 img/s",
				"step 30/30 (100%) · 0.97 step/s · elapsed 31s · ETA 0s · loss 0.0312 · 32.0 img/s",
			},
		},
		{
			name: "resumed", total: 100, begin: 90, adds: 10, tick: 500 * time.Millisecond, desc: "sampling",
			wantLines: []string{
				"sampling: step 91/100 (91%) · 2.00 step/s · elapsed 1s · ETA 5s",
				"sampling: step 100/100 (100%) · 1.82 step/s · elapsed 6s · ETA 0s",
			},
		},
		{
			name: "fast", total: 1000, adds: 1000, tick: time.Millisecond,
			wantLines: []string{
				"step 1/1000 (0%) · 1000 step/s · elapsed 0s · ETA 1s",
				"step 1000/1000 (100%) · 999 step/s · elapsed 1s · ETA 0s",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			clk := &fakeClock{step: tc.tick}
			b := NewWriter(&buf, tc.total, tc.desc, "step", Clock(clk.now))
			if b.Terminal() {
				t.Fatal("a bytes.Buffer taken for a terminal")
			}
			b.Begin(tc.begin)
			b.Describe(tc.detail)
			for range tc.adds {
				b.Add(1)
			}
			b.Finish()
			b.Finish() // a second Finish adds nothing
			out := buf.String()
			if strings.Contains(out, "\r") {
				t.Fatalf("carriage return in a log: %q", out)
			}
			got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if strings.Join(got, "\n") != strings.Join(tc.wantLines, "\n") {
				t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.wantLines, "\n"))
			}
		})
	}
}

// TestProgressSet: a display driven by Set (a sampler's progress hook)
// prints its lines like one driven by Add.
func TestProgressSet(t *testing.T) {
	var buf bytes.Buffer
	clk := &fakeClock{step: 4 * time.Second}
	b := NewWriter(&buf, 8, "sampling", "eval", Clock(clk.now))
	for i := 1; i <= 8; i++ {
		b.Set(i)
	}
	b.Finish()
	want := "sampling: eval 1/8 (12%) · 0.25 eval/s · elapsed 4s · ETA 28s\n" +
		"sampling: eval 4/8 (50%) · 0.25 eval/s · elapsed 16s · ETA 16s\n" +
		"sampling: eval 7/8 (87%) · 0.25 eval/s · elapsed 28s · ETA 4s\n" +
		"sampling: eval 8/8 (100%) · 0.22 eval/s · elapsed 36s · ETA 0s\n"
	if buf.String() != want {
		t.Errorf("got:\n%swant:\n%s", buf.String(), want)
	}
}

// TestProgressQuiet: a quiet display writes nothing, wherever stderr goes.
func TestProgressQuiet(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := os.Stderr
	os.Stderr = f
	b := New(10, "x", "step", true)
	for range 10 {
		b.Add(1)
	}
	b.Finish()
	os.Stderr = old
	if st, _ := f.Stat(); st.Size() != 0 {
		t.Errorf("quiet display wrote %d bytes", st.Size())
	}
}

// TestProgressTerminal: a file is not a terminal; a forced terminal draws
// the bar, redrawn in place.
func TestProgressTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Error("a regular file taken for a terminal")
	}
	var buf bytes.Buffer
	b := NewWriter(&buf, 3, "", "step", Terminal(true))
	if !b.Terminal() {
		t.Fatal("Terminal(true) ignored")
	}
	for range 3 {
		b.Add(1)
	}
	b.Finish()
	if !strings.Contains(buf.String(), "\r") {
		t.Errorf("the terminal bar does not redraw in place: %q", buf.String())
	}
}
