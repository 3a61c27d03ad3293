package benchmark

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	good := Options{Config: "tiny1", Batch: 1, Steps: 1, Mode: Both}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		change func(*Options)
		want   string
	}{
		{func(o *Options) { o.Batch = 0 }, "must be positive"},
		{func(o *Options) { o.Steps = 0 }, "must be positive"},
		{func(o *Options) { o.Warmup = -1 }, "warmup"},
		{func(o *Options) { o.Mode = "infer" }, "mode"},
		{func(o *Options) { o.Config = "nope" }, "nope"},
	} {
		o := good
		c.change(&o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error containing %q", o, err, c.want)
		}
	}
}

func TestTimeSteps(t *testing.T) {
	calls := 0
	med, lo := timeSteps(func() { calls++ }, 2, 5)
	if calls != 7 || lo > med || lo < 0 {
		t.Errorf("%d calls, median %v, minimum %v", calls, med, lo)
	}
	if round(1.23456, 2) != 1.23 || round(1.235, 1) != 1.2 || round(0.05, 1) != 0.1 {
		t.Error("round")
	}
}

// TestRunWithReference runs the smallest config for one step of each kind
// beside a stand-in for the PyTorch script (a shell script printing its
// JSON): the ratios come from its medians, the table and the JSON carry
// them. A smoke test of the plumbing, not a measurement.
func TestRunWithReference(t *testing.T) {
	dir := t.TempDir()
	args := filepath.Join(dir, "args")
	script := filepath.Join(dir, "ref.sh")
	body := "echo \"$@\" > " + args + "\necho warming up\n" +
		`echo '{"framework": "torch 0", "train": {"median_ms": 2}, "sample": {"median_ms": 4}}'` + "\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := Run(Options{Config: "tiny1", Batch: 1, Steps: 1, Mode: Both, Torch: script, Python: "/bin/sh"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Config != "tiny1" || r.Params <= 0 || !(r.TrainMS > 0) || !(r.SampleMS > 0) || r.Torch == nil {
		t.Fatalf("result %+v", r)
	}
	if want := round(r.TrainMS/2, 3); r.TrainRatio != want {
		t.Errorf("train ratio %v, want %v", r.TrainRatio, want)
	}
	if want := round(r.SampleMS/4, 3); r.SampleRatio != want {
		t.Errorf("sample ratio %v, want %v", r.SampleRatio, want)
	}
	b, _ := os.ReadFile(args)
	if got := strings.TrimSpace(string(b)); !strings.HasPrefix(got, "--config tiny1 --batch 1 --steps 1 --warmup 0 --mode both --threads ") {
		t.Errorf("the reference got %q", got)
	}
	var raw map[string]any
	j, _ := json.Marshal(r)
	if err := json.Unmarshal(j, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"framework", "kernel", "fwd_gflop_per_image", "train_ms", "sample_images_per_s", "peak_rss_mb", "torch", "train_ratio_vs_torch"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	var table bytes.Buffer
	r.WriteTable(&table)
	for _, want := range []string{"config tiny1, batch 1", "\ntrain ", "\nsample ", "PyTorch (torch 0): train 2.0 ms, sample 4.0 ms", "peak RSS"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}

	if _, err := Run(Options{Config: "tiny1", Batch: 1, Steps: 1, Mode: Train, Torch: filepath.Join(dir, "none.py"), Python: "/bin/false"}); err == nil || !strings.Contains(err.Error(), "PyTorch reference") {
		t.Errorf("a failing reference: %v", err)
	}
}
