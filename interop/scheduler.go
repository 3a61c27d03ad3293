package interop

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/ddpm-go/ddpm/diffusion"
)

// ReadSchedulerConfig is SchedulerConfig on the file at path.
func ReadSchedulerConfig(path string) (diffusion.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return diffusion.Config{}, err
	}
	return SchedulerConfig(path, data)
}

// DefaultSchedulerConfig is the process of a diffusers DDPMScheduler built
// with no arguments (the scheduler_config.json of "{}"): linear β from
// 1e-4 to 0.02 over 1000 steps, ε-prediction, the fixed_small variance
// (β̃_t; DDPMScheduler's default, unlike the paper's CIFAR-10 setting) and
// x̂0 clipped to [−1, 1].
func DefaultSchedulerConfig() diffusion.Config {
	c, err := SchedulerConfig("scheduler_config.json", []byte("{}"))
	if err != nil {
		panic(err)
	}
	return c
}

// SchedulerConfig maps a diffusers scheduler_config.json (file names it in
// errors) to the diffusion process it describes. Absent keys take
// DDPMScheduler's defaults. Mapped: num_train_timesteps; beta_schedule
// linear, scaled_linear, squaredcos_cap_v2 (the cosine schedule) or
// trained_betas; variance_type fixed_small(_log) and fixed_large(_log);
// clip_sample; prediction_type epsilon, sample and v_prediction. Refused in
// one line naming the key: variance_type learned (diffusers reads the
// network's extra channels as σ² itself, the project's learned variance as
// log σ²) and learned_range (improved DDPM's interpolation), beta_schedule
// sigmoid, clip_sample_range ≠ 1, thresholding, rescale_betas_zero_snr,
// and any key this package does not know. Keys that only shape diffusers'
// own sampling loop (timestep_spacing, steps_offset, set_alpha_to_one, …)
// are not part of the process: SchedulerSpacing reads the first two.
//
// Scheduler classes other than DDPMScheduler (DDIMScheduler, PNDMScheduler,
// …) describe the same training process with their own sampling loop; their
// process keys are read the same way. diffusers keeps the schedule in
// float32, the project in float64 (up to ~1e-4 relative near t = 0).
func SchedulerConfig(file string, data []byte) (diffusion.Config, error) {
	c, err := parseConf(file, data)
	if err != nil {
		return diffusion.Config{}, err
	}
	dc := diffusion.DefaultConfig()
	dc.Var = diffusion.FixedSmall
	cls, err := c.str("_class_name", "DDPMScheduler")
	if err != nil {
		return dc, err
	}
	samplerOnly := map[string][]string{ // keys of each class's sampling loop alone
		"DDPMScheduler": {"timestep_spacing", "steps_offset"},
		"DDIMScheduler": {"timestep_spacing", "steps_offset", "set_alpha_to_one"},
		"PNDMScheduler": {"timestep_spacing", "steps_offset", "set_alpha_to_one", "skip_prk_steps"},
	}
	ignore, ok := samplerOnly[cls]
	if !ok {
		return dc, c.errf("_class_name", "only DDPMScheduler, DDIMScheduler and PNDMScheduler configs are read")
	}

	T, _, err := c.integer("num_train_timesteps", 1000)
	if err != nil {
		return dc, err
	}
	if T < 2 {
		return dc, c.errf("num_train_timesteps", "need at least 2")
	}
	dc.T = T
	if dc.BetaStart, _, err = c.number("beta_start", 0.0001); err != nil {
		return dc, err
	}
	if dc.BetaEnd, _, err = c.number("beta_end", 0.02); err != nil {
		return dc, err
	}
	schedule, err := c.str("beta_schedule", "linear")
	if err != nil {
		return dc, err
	}
	raw, present, null := c.get("trained_betas")
	switch {
	case present && !null:
		betas, err := floats(c, "trained_betas", raw)
		if err != nil {
			return dc, err
		}
		if len(betas) != T {
			return dc, c.errf("trained_betas", "%d betas for num_train_timesteps = %d", len(betas), T)
		}
		dc.Schedule, dc.Betas = diffusion.GivenBeta, &betas
	case schedule == "linear":
		dc.Schedule = diffusion.LinearBeta
	case schedule == "scaled_linear":
		dc.Schedule = diffusion.ScaledLinearBeta
	case schedule == "squaredcos_cap_v2":
		dc.Schedule = diffusion.CosineBeta
	default:
		return dc, c.errf("beta_schedule", "only linear, scaled_linear, squaredcos_cap_v2 and trained_betas can be expressed")
	}

	variance, err := c.str("variance_type", "fixed_small")
	if err != nil {
		return dc, err
	}
	switch variance {
	case "fixed_small", "fixed_small_log":
		dc.Var = diffusion.FixedSmall
	case "fixed_large", "fixed_large_log":
		dc.Var = diffusion.FixedLarge
	case "learned":
		return dc, c.errf("variance_type", "diffusers reads the network's extra channels as σ² itself, the project's learned variance as log σ²: not the same model")
	case "learned_range":
		return dc, c.errf("variance_type", "improved DDPM's interpolated variance (between log β̃ and log β) cannot be expressed")
	default:
		return dc, c.errf("variance_type", "only fixed_small and fixed_large can be expressed")
	}
	if dc.Clip, err = c.boolean("clip_sample", true); err != nil {
		return dc, err
	}
	if r, _, err := c.number("clip_sample_range", 1); err != nil {
		return dc, err
	} else if r != 1 && dc.Clip {
		return dc, c.errf("clip_sample_range", "x̂0 is clipped to [−1, 1]; another range cannot be expressed")
	}
	if old, err := c.boolean("predict_epsilon", true); err != nil { // diffusers < 0.10
		return dc, err
	} else if !old {
		dc.Mean = diffusion.XStart
	}
	pred, err := c.str("prediction_type", "epsilon")
	if err != nil {
		return dc, err
	}
	switch pred {
	case "epsilon":
	case "sample":
		dc.Mean = diffusion.XStart
	case "v_prediction":
		dc.Mean = diffusion.V
	default:
		return dc, c.errf("prediction_type", "only epsilon, sample and v_prediction can be expressed")
	}
	for _, key := range []string{"thresholding", "rescale_betas_zero_snr"} {
		if on, err := c.boolean(key, false); err != nil {
			return dc, err
		} else if on {
			return dc, c.errf(key, "cannot be expressed")
		}
	}
	// Thresholding's parameters, and very old diffusers' array format.
	for _, k := range []string{"dynamic_thresholding_ratio", "sample_max_value", "tensor_format"} {
		c.get(k)
	}
	if err := c.unknown(ignore...); err != nil {
		return dc, err
	}
	if _, err := diffusion.New(dc); err != nil {
		return dc, fmt.Errorf("%s: %v", c.file, err)
	}
	return dc, nil
}

// ReadSchedulerSpacing is SchedulerSpacing on the file at path.
func ReadSchedulerSpacing(path string) (diffusion.Spacing, int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	return SchedulerSpacing(path, data)
}

// SchedulerSpacing is the timestep spacing a diffusers scheduler config
// (file names it in errors) gives its own sampling loop with fewer steps
// than T: timestep_spacing (leading, trailing or linspace; absent:
// "leading", DDPMScheduler's and DDIMScheduler's default) and steps_offset
// (absent or null: 0), which the fast samplers take as their default so
// that they visit the timesteps DDPMPipeline and DDIMPipeline do. Another
// spacing is refused in one line naming the key, as set_timesteps refuses
// it.
func SchedulerSpacing(file string, data []byte) (diffusion.Spacing, int, error) {
	c, err := parseConf(file, data)
	if err != nil {
		return 0, 0, err
	}
	name, err := c.str("timestep_spacing", "leading")
	if err != nil {
		return 0, 0, err
	}
	var sp diffusion.Spacing
	switch name {
	case "leading":
		sp = diffusion.SpacingLeading
	case "trailing":
		sp = diffusion.SpacingTrailing
	case "linspace":
		sp = diffusion.SpacingLinspace
	default:
		return 0, 0, c.errf("timestep_spacing", "only leading, trailing and linspace are diffusers' spacings")
	}
	offset, _, err := c.integer("steps_offset", 0)
	if err != nil {
		return 0, 0, err
	}
	if offset < 0 {
		return 0, 0, c.errf("steps_offset", "must be ≥ 0")
	}
	return sp, offset, nil
}

// floats decodes a list of numbers.
func floats(c *jsonConf, key string, raw []byte) ([]float64, error) {
	var v []float64
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, c.errf(key, "not a list of numbers")
	}
	return v, nil
}

// DiffusersSchedulerConfig is the DDPMScheduler scheduler_config.json of
// the process dc, with every key DDPMScheduler takes. It refuses, in one
// line, what DDPMScheduler cannot express: a learned or fitted variance
// and the x_{t−1} (μ) parameterisation.
func DiffusersSchedulerConfig(dc diffusion.Config) (map[string]any, error) {
	if _, err := diffusion.New(dc); err != nil && dc.Var != diffusion.Fitted {
		return nil, err
	}
	m := map[string]any{
		"_class_name":                "DDPMScheduler",
		"_diffusers_version":         DiffusersVersion,
		"num_train_timesteps":        dc.T,
		"beta_start":                 dc.BetaStart,
		"beta_end":                   dc.BetaEnd,
		"trained_betas":              nil,
		"clip_sample":                dc.Clip,
		"clip_sample_range":          1.0,
		"thresholding":               false,
		"dynamic_thresholding_ratio": 0.995,
		"sample_max_value":           1.0,
		"timestep_spacing":           "leading",
		"steps_offset":               0,
		"rescale_betas_zero_snr":     false,
	}
	switch dc.Schedule {
	case diffusion.LinearBeta:
		m["beta_schedule"] = "linear"
	case diffusion.ScaledLinearBeta:
		m["beta_schedule"] = "scaled_linear"
	case diffusion.CosineBeta:
		m["beta_schedule"] = "squaredcos_cap_v2"
	case diffusion.GivenBeta:
		m["beta_schedule"] = "linear" // ignored when trained_betas is set
		m["trained_betas"] = *dc.Betas
	default:
		return nil, fmt.Errorf("beta schedule %v has no diffusers beta_schedule", dc.Schedule)
	}
	switch dc.Var {
	case diffusion.FixedLarge:
		m["variance_type"] = "fixed_large"
	case diffusion.FixedSmall:
		m["variance_type"] = "fixed_small"
	case diffusion.Learned:
		return nil, fmt.Errorf("variance %v: diffusers' learned variance is σ², the project's log σ² (not the same model); no variance_type expresses it", dc.Var)
	default:
		return nil, fmt.Errorf("variance %v has no diffusers variance_type (export the fixed variance it refines: fixedlarge or fixedsmall)", dc.Var)
	}
	switch dc.Mean {
	case diffusion.Eps:
		m["prediction_type"] = "epsilon"
	case diffusion.XStart:
		m["prediction_type"] = "sample"
	case diffusion.V:
		m["prediction_type"] = "v_prediction"
	default:
		return nil, fmt.Errorf("model mean %v (the network predicts μ̃) has no diffusers prediction_type", dc.Mean)
	}
	return m, nil
}
