package benchmark

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/serve"
)

// Serve is the mode of `ddpm bench --mode serve`: [RunServe].
const Serve = "serve"

// ServeOptions choose what [RunServe] measures.
type ServeOptions struct {
	Model   string        // the model served, as ddpm.Load takes it ("": ddpm.DefaultModel)
	Clients int           // clients, one DDIM image per request each
	Steps   int           // DDIM steps per request
	Rounds  int           // measured rounds of each mode, interleaved; medians are reported
	Soak    time.Duration // then batched rounds for this long; memory at its start and end (0: none)
	Log     io.Writer     // soak: a line a minute (nil: none)
}

// Validate reports the first option out of range.
func (o ServeOptions) Validate() error {
	if o.Clients <= 0 || o.Steps <= 0 || o.Rounds <= 0 || o.Soak < 0 {
		return errors.New("clients, steps and rounds must be positive, soak ≥ 0")
	}
	return nil
}

// ServeResult is what `ddpm bench --mode serve --json` prints. Batched is
// images/s of Clients requests sent at once, Serial of the same requests
// sent one at a time; Ratio is the median over the rounds of their ratio.
// NetworkRatio is the same ratio for SampleTensor of Clients images in one
// call against one image a call: what the network gains from the batch,
// the ceiling of Ratio.
// LoneMS is the median latency of one request served alone (the serial
// mode's requests), DirectMS the median time of the same work done by
// ddpm.Pipeline.SampleTensor in this process (what `ddpm sample` runs).
type ServeResult struct {
	Model         string    `json:"model"`
	CPU           string    `json:"cpu"`
	Threads       int       `json:"threads"`
	Clients       int       `json:"clients"`
	Steps         int       `json:"ddim_steps"`
	Rounds        int       `json:"rounds"`
	BatchedRounds []float64 `json:"batched_images_per_s_rounds"`
	SerialRounds  []float64 `json:"serial_images_per_s_rounds"`
	Batched       float64   `json:"batched_images_per_s"`
	Serial        float64   `json:"serial_images_per_s"`
	Ratio         float64   `json:"ratio"`
	NetworkRatio  float64   `json:"network_ratio"`
	LoneMS        float64   `json:"lone_ms"`
	DirectMS      float64   `json:"direct_ms"`
	LatencyRatio  float64   `json:"lone_vs_direct"`

	SoakSeconds     float64 `json:"soak_s,omitempty"`
	SoakImages      int     `json:"soak_images,omitempty"`
	SoakImgPerS     float64 `json:"soak_images_per_s,omitempty"`
	RSSStartMB      float64 `json:"rss_start_mb,omitempty"`
	RSSEndMB        float64 `json:"rss_end_mb,omitempty"`
	RSSMaxMB        float64 `json:"rss_max_mb,omitempty"` // the largest reading, per minute and at the ends
	HeapStartMB     float64 `json:"heap_start_mb,omitempty"`
	HeapEndMB       float64 `json:"heap_end_mb,omitempty"`
	GoroutinesStart int     `json:"goroutines_start,omitempty"`
	GoroutinesEnd   int     `json:"goroutines_end,omitempty"`
}

// RunServe serves the model over loopback HTTP in this process and
// measures, in each round, Clients requests of one DDIM image sent at once
// and the same requests sent one at a time, each one's latency paired with
// the same work through Pipeline.SampleTensor; rounds alternate which mode
// goes first, so that a change in the machine's load falls on both. One
// request of Clients images and one of one image first grow the network's
// buffers to both batch sizes: otherwise the first batched step pays for it
// (0.5–1 s on MNIST). With Soak, batched rounds then repeat for that long.
func RunServe(o ServeOptions) (*ServeResult, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Model == "" {
		o.Model = ddpm.DefaultModel
	}
	srv, err := serve.New(serve.Options{Models: []string{o.Model}, MaxImages: max(64, o.Clients), Queue: max(64, o.Clients)})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	direct, err := ddpm.Load(o.Model) // its own network: the server's is the scheduler's
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := srv.HTTPServer(ln.Addr().String())
	go hs.Serve(ln)
	defer hs.Close()
	c := &client{
		url:  "http://" + ln.Addr().String() + "/api/v1/sample",
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.Clients}},
	}
	defer c.http.CloseIdleConnections()
	model := serve.ModelName(o.Model, direct.Source)
	body := func(n int, seed uint64) []byte {
		b, _ := json.Marshal(map[string]any{"model": model, "n": n, "sampler": "ddim", "steps": o.Steps, "seed": seed})
		return b
	}

	r := &ServeResult{Model: model, CPU: cpuName(), Threads: runtime.GOMAXPROCS(0), Clients: o.Clients, Steps: o.Steps, Rounds: o.Rounds}
	for _, n := range []int{o.Clients, 1} {
		if _, err := c.sample(body(n, 0)); err != nil {
			return nil, err
		}
	}
	if _, err := direct.SampleTensor(context.Background(), 1, ddpm.SampleOptions{Sampler: ddpm.DDIM(o.Steps)}); err != nil {
		return nil, err
	}
	var lone, dir, ratios, ceilings []float64
	seed := uint64(1)
	sampler := ddpm.DDIM(o.Steps)
	batched := func() error {
		ips, err := c.burst(o.Clients, func(k int) []byte { return body(1, seed+uint64(k)) })
		seed += uint64(o.Clients)
		r.BatchedRounds = append(r.BatchedRounds, round(ips, 2))
		return err
	}
	// serial sends the requests one at a time, each followed by the same
	// work through SampleTensor (so that both see the same load), then
	// samples all Clients images in one SampleTensor call: the network's
	// own gain from the batch, the ceiling of the server's.
	serial := func() error {
		var sumLone, sumDir float64
		for range o.Clients {
			d, err := c.sample(body(1, seed))
			if err != nil {
				return err
			}
			start := time.Now()
			if _, err := direct.SampleTensor(context.Background(), 1, ddpm.SampleOptions{Sampler: sampler, Seed: seed}); err != nil {
				return err
			}
			e := time.Since(start).Seconds()
			seed++
			lone, dir = append(lone, d.Seconds()*1e3), append(dir, e*1e3)
			sumLone += d.Seconds()
			sumDir += e
		}
		r.SerialRounds = append(r.SerialRounds, round(float64(o.Clients)/sumLone, 2))
		start := time.Now()
		if _, err := direct.SampleTensor(context.Background(), o.Clients, ddpm.SampleOptions{Sampler: sampler, Seed: seed}); err != nil {
			return err
		}
		seed++
		ceilings = append(ceilings, sumDir/time.Since(start).Seconds())
		return nil
	}
	for i := range o.Rounds {
		first, second := serial, batched
		if i%2 == 1 {
			first, second = batched, serial
		}
		if err := first(); err != nil {
			return nil, err
		}
		if err := second(); err != nil {
			return nil, err
		}
		ratios = append(ratios, r.BatchedRounds[i]/r.SerialRounds[i])
	}
	r.Batched, r.Serial = round(median(r.BatchedRounds), 2), round(median(r.SerialRounds), 2)
	r.Ratio, r.NetworkRatio = round(median(ratios), 2), round(median(ceilings), 2)
	r.LoneMS, r.DirectMS = round(median(lone), 1), round(median(dir), 1)
	r.LatencyRatio = round(r.LoneMS/r.DirectMS, 3)

	if o.Soak <= 0 {
		return r, nil
	}
	burst := func() error {
		_, err := c.burst(o.Clients, func(k int) []byte { return body(1, seed+uint64(k)) })
		seed += uint64(o.Clients)
		r.SoakImages += o.Clients
		return err
	}
	// settle reads the memory at the soak's ends alike: the clients'
	// connections closed, the garbage collected and returned to the OS
	// (otherwise RSS at the start still holds the rounds' freed pages).
	settle := func() (rss, heap float64, goroutines int) {
		c.http.CloseIdleConnections()
		time.Sleep(100 * time.Millisecond) // the server's connection goroutines see the close
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return procStatusMB("VmRSS:"), round(float64(ms.HeapInuse)/(1<<20), 1), runtime.NumGoroutine()
	}
	if err := burst(); err != nil { // the soak's own first round, unmeasured
		return nil, err
	}
	r.SoakImages = 0
	r.RSSStartMB, r.HeapStartMB, r.GoroutinesStart = settle()
	r.RSSMaxMB = r.RSSStartMB
	start, next := time.Now(), time.Now().Add(time.Minute)
	for time.Since(start) < o.Soak {
		if err := burst(); err != nil {
			return nil, err
		}
		if time.Now().After(next) {
			rss := procStatusMB("VmRSS:")
			r.RSSMaxMB = max(r.RSSMaxMB, rss)
			if o.Log != nil {
				fmt.Fprintf(o.Log, "soak %s: %d images, RSS %.0f MB\n", time.Since(start).Round(time.Second), r.SoakImages, rss)
			}
			next = next.Add(time.Minute)
		}
	}
	r.SoakSeconds = round(time.Since(start).Seconds(), 1)
	r.SoakImgPerS = round(float64(r.SoakImages)/r.SoakSeconds, 2)
	r.RSSEndMB, r.HeapEndMB, r.GoroutinesEnd = settle()
	r.RSSMaxMB = max(r.RSSMaxMB, r.RSSEndMB)
	return r, nil
}

// client sends sample requests to the server under test and reads their
// PNG answers whole.
type client struct {
	url  string
	http *http.Client
}

// sample sends one request and returns the time until its answer was read.
func (c *client) sample(body []byte) (time.Duration, error) {
	start := time.Now()
	resp, err := c.http.Post(c.url, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("serve: %s: %s", resp.Status, b)
	}
	return time.Since(start), nil
}

// burst sends n requests at once and returns images/s (one image each).
func (c *client) burst(n int, body func(k int) []byte) (float64, error) {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for k := range n {
		wg.Go(func() { _, errs[k] = c.sample(body(k)) })
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds(), errors.Join(errs...)
}

// WriteTable writes the result as `ddpm bench --mode serve` prints it.
func (r *ServeResult) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "serve %s: %d clients × 1 image, DDIM %d steps, %d rounds, %d threads, %s\n",
		r.Model, r.Clients, r.Steps, r.Rounds, r.Threads, r.CPU)
	fmt.Fprintf(w, "%-28s %8.2f images/s  rounds %v\n", "one request at a time", r.Serial, r.SerialRounds)
	fmt.Fprintf(w, "%-28s %8.2f images/s  rounds %v\n", fmt.Sprintf("%d requests at once", r.Clients), r.Batched, r.BatchedRounds)
	fmt.Fprintf(w, "%-28s %8.2f× (the network's own, SampleTensor of %d images against 1: %.2f×)\n", "batched / one at a time", r.Ratio, r.Clients, r.NetworkRatio)
	fmt.Fprintf(w, "%-28s %8.1f ms (Pipeline.SampleTensor: %.1f ms, ×%.3f)\n", "lone client latency", r.LoneMS, r.DirectMS, r.LatencyRatio)
	if r.SoakSeconds > 0 {
		fmt.Fprintf(w, "soak %.0f s, %d images (%.2f images/s): RSS %.0f → %.0f MB (max %.0f), Go heap %.1f → %.1f MB, goroutines %d → %d\n",
			r.SoakSeconds, r.SoakImages, r.SoakImgPerS, r.RSSStartMB, r.RSSEndMB, r.RSSMaxMB, r.HeapStartMB, r.HeapEndMB, r.GoroutinesStart, r.GoroutinesEnd)
	}
}

// median is the median of v (0 when empty).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// procStatusMB reads a kB field of /proc/self/status (VmRSS:, VmHWM:) in
// MB; 0 where there is none.
func procStatusMB(key string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return round(kb/1024, 1)
		}
	}
	return 0
}

// cpuName is /proc/cpuinfo's first model name, or GOARCH.
func cpuName() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
