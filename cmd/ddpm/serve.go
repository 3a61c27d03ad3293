package main

import (
	"context"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/serve"
)

func init() {
	register("serve", "an HTTP API and web studio that samples for many clients at once (batched)", runServe)
}

// runServe is `ddpm serve`: flags → serve.New → ListenAndServe until SIGINT
// or SIGTERM, then a graceful shutdown (a second signal ends the process
// at once).
func runServe(args []string) error {
	fs := newFlags("serve", "[--addr 127.0.0.1:8080] [--models mnist,fashion-mnist,PATH…] [--max-batch 64] [--queue 64]")
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on (loopback by default; 0.0.0.0:8080 lets any host use this machine's CPU)")
	models := fs.String("models", ddpm.DefaultModel, "comma-separated models to serve: shipped names ("+strings.Join(ddpm.ShippedModels(), ", ")+"), run directories, checkpoint or weights files, diffusers folders")
	var o serve.Options
	fs.IntVar(&o.MaxBatch, "max-batch", 64, "most images denoised in one network evaluation, over all requests")
	fs.IntVar(&o.Queue, "queue", 64, "most requests waiting for room in the batch; beyond it: 503 with Retry-After")
	fs.IntVar(&o.MaxImages, "max-images", 64, "most images per request")
	fs.IntVar(&o.MaxSteps, "max-steps", 1000, "most network evaluations per image per request (ancestral takes T)")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGINT/SIGTERM, how long running requests may finish before they are cancelled")
	quiet := fs.Bool("quiet", false, "no line per request on stderr")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"max-batch", o.MaxBatch}, {"queue", o.Queue}, {"max-images", o.MaxImages}, {"max-steps", o.MaxSteps}} {
		if c.v < 1 {
			return usageErr("--%s must be ≥ 1, got %d", c.name, c.v)
		}
	}
	if o.ShutdownTimeout <= 0 {
		return usageErr("--shutdown-timeout must be positive, got %s", o.ShutdownTimeout)
	}
	for _, m := range strings.Split(*models, ",") {
		if m = strings.TrimSpace(m); m != "" {
			o.Models = append(o.Models, m)
		}
	}
	if len(o.Models) == 0 {
		return usageErr("--models names no model")
	}
	if _, _, err := net.SplitHostPort(*addr); err != nil {
		return usageErr("--addr %q: %v", *addr, err)
	}
	logger := log.New(os.Stderr, "", log.LstdFlags)
	if !*quiet {
		o.Logf = logger.Printf
	}
	s, err := serve.New(o)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal ends the process at once
	}()
	return s.ListenAndServe(ctx, *addr, func(a net.Addr) {
		logger.Printf("serving %s on http://%s (studio /, API /api/v1, metrics /metrics)", strings.Join(o.Models, ", "), a)
		if tcp, ok := a.(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
			logger.Printf("note: %s is reachable from other hosts; the API has no authentication", a)
		}
	})
}
