package main

import (
	"fmt"
	"io"
	"os"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/experiments/schedule"
	"github.com/ddpm-go/ddpm/internal/plot"
)

func init() {
	register("schedule", "the noise schedule per t: β, ᾱ, β̃, SNR and the eq. 12 weights (why L_simple helps)", runSchedule)
}

func runSchedule(args []string) error { return scheduleCommand(args, os.Stdout) }

func scheduleCommand(args []string, w io.Writer) error {
	fs := newFlags("schedule", "[--T 1000] [--beta-start 1e-4] [--beta-end 0.02] [--schedule linear|cosine] [--model mnist|fashion-mnist|DIR|FILE] [--every N] [--out schedule.png] [--json]")
	dc := diffusion.DefaultConfig()
	fs.IntVar(&dc.T, "T", dc.T, "number of diffusion steps")
	fs.Float64Var(&dc.BetaStart, "beta-start", dc.BetaStart, "β_1 of the linear schedule")
	fs.Float64Var(&dc.BetaEnd, "beta-end", dc.BetaEnd, "β_T of the linear schedule")
	fs.Var(enumFlag{&dc.Schedule}, "schedule", "β schedule: linear or cosine")
	modelPath := fs.String("model", "", "take the schedule from this model instead: "+modelHelp)
	every := fs.Int("every", 0, "table rows every N timesteps, plus t = 1 and t = T (default T/20)")
	out := fs.String("out", "schedule.png", "PNG of the schedule and the weights (.png)")
	asJSON := fs.Bool("json", false, "print one JSON object with every t instead of the table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageErr("--out must name a PNG file")
	}
	if err := checkImageOut("out", *out, ".png"); err != nil {
		return err
	}
	if *modelPath != "" {
		for _, f := range []string{"T", "beta-start", "beta-end", "schedule"} {
			if flagSet(fs, f) {
				return usageErr("--%s and --model both set the schedule; give one", f)
			}
		}
		p, err := loadFixed(*modelPath)
		if err != nil {
			return err
		}
		mc := p.ProcessConfig()
		dc.Schedule, dc.T, dc.BetaStart, dc.BetaEnd = mc.Schedule, mc.T, mc.BetaStart, mc.BetaEnd
	}
	tb, err := schedule.Compute(dc)
	if err != nil {
		return usageErr("%v", err)
	}
	step := *every
	if step == 0 {
		step = max(1, tb.T/20)
	}
	if step < 0 {
		return usageErr("--every must be positive, got %d", step)
	}
	if err := plotSchedule(*out, tb, dc); err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(w, tb)
	}
	ratio := schedule.SimpleRatio(tb.WeightFixedLarge)
	fmt.Fprintf(w, "%s schedule, T = %d%s\n", tb.Schedule, tb.T, map[bool]string{
		true: fmt.Sprintf(", β from %g to %g", dc.BetaStart, dc.BetaEnd), false: ""}[dc.Schedule == diffusion.LinearBeta])
	fmt.Fprintf(w, "w_t = β_t²/(2σ_t² α_t (1−ᾱ_t)) is the weight of ‖ε − ε_θ‖² in L_{t−1} (eq. 12); L_simple uses 1 for every t,\n")
	fmt.Fprintf(w, "i.e. it weighs t relative to the bound by 1/w_t (last column, normalised to mean 1 over t)\n")
	fmt.Fprintf(w, "%6s %11s %11s %11s %11s %13s %13s %12s\n", "t", "β_t", "ᾱ_t", "β̃_t", "SNR", "w (σ²=β)", "w (σ²=β̃)", "L_simple/L")
	for i := 0; i < tb.T; i++ {
		if i != 0 && i != tb.T-1 && (i+1)%step != 0 {
			continue
		}
		fmt.Fprintf(w, "%6d %11.4e %11.4e %11.4e %11.4e %13.4e %13.4e %12.4f\n", i+1, tb.Beta[i], tb.AlphaBar[i],
			tb.PosteriorVariance[i], tb.SNR[i], tb.WeightFixedLarge[i], tb.WeightFixedSmall[i], ratio[i])
	}
	fmt.Fprintf(w, "(at t = 1 both weights use σ_1² = β̃_2, as the official code does: β̃_1 = 0)\nfigure: %s\n", *out)
	return nil
}

func plotSchedule(path string, tb *schedule.Table, dc diffusion.Config) error {
	t := make([]float64, tb.T)
	one := make([]float64, tb.T)
	for i := range t {
		t[i] = float64(i + 1)
		one[i] = 1
	}
	name := tb.Schedule
	return plot.Save(path, 2,
		plot.Panel{Title: name + " schedule: variances", XLabel: "t", YLabel: "variance", LogY: true, LegendBottom: true, Series: []plot.Series{
			{Name: "β_t", X: t, Y: tb.Beta}, {Name: "β̃_t (posterior)", X: t, Y: tb.PosteriorVariance}}},
		plot.Panel{Title: "signal kept: ᾱ_t", XLabel: "t", YLabel: "ᾱ_t", ZeroY: true, Series: []plot.Series{
			{Name: "ᾱ_t", X: t, Y: tb.AlphaBar}}},
		plot.Panel{Title: "signal-to-noise ratio ᾱ_t/(1−ᾱ_t)", XLabel: "t", YLabel: "SNR", LogY: true, Series: []plot.Series{
			{Name: "SNR", X: t, Y: tb.SNR}}},
		plot.Panel{Title: "weight of the ε-error in L(t−1), eq. 12", XLabel: "t", YLabel: "weight (nats)", LogY: true, YMax: 20, Series: []plot.Series{
			{Name: "bound, σ² = β", X: t, Y: tb.WeightFixedLarge}, {Name: "bound, σ² = β̃", X: t, Y: tb.WeightFixedSmall},
			{Name: "L_simple", X: t, Y: one}}},
	)
}
