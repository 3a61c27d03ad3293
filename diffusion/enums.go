package diffusion

import (
	"fmt"
	"strings"
)

// ModelMean is what the mean part of the network output predicts.
type ModelMean int

const (
	// Eps: the network predicts the noise ε (the paper's choice, eq. 11).
	Eps ModelMean = iota
	// XPrev: the network predicts the posterior mean μ̃_t, i.e. μ_θ directly.
	XPrev
	// XStart: the network predicts x0; μ_θ = μ̃_t(x_t, x̂0).
	XStart
	// V: the network predicts v = √ᾱ_t ε − √(1−ᾱ_t) x0 (Salimans & Ho
	// 2022; diffusers' prediction_type v_prediction), so x̂0 = √ᾱ_t x_t −
	// √(1−ᾱ_t) v and μ_θ = μ̃_t(x_t, x̂0).
	V
)

// ModelVar is how the reverse-process variance Σ_θ = σ_t² I is chosen.
type ModelVar int

const (
	// FixedLarge: σ_t² = β_t, with index 0's variance replaced by β̃ at index
	// 1 (the official code: log(append(posterior_variance[1], betas[1:]))).
	FixedLarge ModelVar = iota
	// FixedSmall: σ_t² = β̃_t, with index 0's log-variance replaced by log β̃
	// at index 1 (β̃_1 = 0).
	FixedSmall
	// Learned: the network outputs a per-pixel log σ² in its last C channels
	// (Table 2's learned diagonal Σ).
	Learned
	// Fitted: σ² = β̃_t + c₁²·E(x̂0 − x0)², the variance that minimises the
	// expected L_{t−1} for a trained network's own mean, with the error
	// measured on held-out images per step and per bin of the predicted x̂0
	// ([FitBinEdges]); the decoder's σ_1 per bin minimises their mean L_0. It
	// needs a [VarianceFit] (see [Diffusion.WithFit]) and is chosen after
	// training, never trained with.
	Fitted
)

// LossType is the training objective; see [Diffusion.TrainingLoss].
type LossType int

const (
	// Simple: L_simple (eq. 14), mean over pixels of ‖target − output‖².
	Simple LossType = iota
	// VLB: the true bound term L_{t−1} (or the decoder NLL L_0) in bits/dim.
	VLB
	// MSEMu: unweighted mean over pixels of ‖μ̃_t − μ_θ‖².
	MSEMu
	// Hybrid: Simple + λ·T·L_{t−1} with a stop-gradient on the mean
	// (improved-diffusion's L_hybrid, λ = HybridLambda). Needs Learned.
	Hybrid
)

// HybridLambda is λ in L_hybrid = L_simple + λ·L_vlb (Nichol & Dhariwal).
const HybridLambda = 0.001

var (
	modelMeanNames = []string{Eps: "eps", XPrev: "xprev", XStart: "xstart", V: "v"}
	modelVarNames  = []string{FixedLarge: "fixedlarge", FixedSmall: "fixedsmall", Learned: "learned", Fitted: "fitted"}
	lossTypeNames  = []string{Simple: "simple", VLB: "vlb", MSEMu: "mse-mu", Hybrid: "hybrid"}
)

func enumString(names []string, v int, kind string) string {
	if v >= 0 && v < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", kind, v)
}

func enumParse(names []string, s, kind string) (int, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	for i, n := range names {
		if s == n {
			return i, nil
		}
	}
	return 0, fmt.Errorf("diffusion: unknown %s %q (want one of %s)", kind, s, strings.Join(names, ", "))
}

func (m ModelMean) String() string { return enumString(modelMeanNames, int(m), "ModelMean") }
func (v ModelVar) String() string  { return enumString(modelVarNames, int(v), "ModelVar") }
func (l LossType) String() string  { return enumString(lossTypeNames, int(l), "LossType") }

// Valid reports whether m is one of the defined constants.
func (m ModelMean) Valid() bool { return m >= 0 && int(m) < len(modelMeanNames) }

// Valid reports whether v is one of the defined constants.
func (v ModelVar) Valid() bool { return v >= 0 && int(v) < len(modelVarNames) }

// Valid reports whether l is one of the defined constants.
func (l LossType) Valid() bool { return l >= 0 && int(l) < len(lossTypeNames) }

// ParseModelMean parses "eps", "xprev", "xstart" or "v" (case-insensitive).
func ParseModelMean(s string) (ModelMean, error) {
	v, err := enumParse(modelMeanNames, s, "model mean")
	return ModelMean(v), err
}

// ParseModelVar parses "fixedlarge", "fixedsmall", "learned" or "fitted".
func ParseModelVar(s string) (ModelVar, error) {
	v, err := enumParse(modelVarNames, s, "model variance")
	return ModelVar(v), err
}

// ParseLossType parses "simple", "vlb", "mse-mu" or "hybrid".
func ParseLossType(s string) (LossType, error) {
	v, err := enumParse(lossTypeNames, s, "loss type")
	return LossType(v), err
}

// MarshalText implements encoding.TextMarshaler (flag.TextVar, JSON).
func (m ModelMean) MarshalText() ([]byte, error) { return marshalEnum(m.Valid(), m.String()) }

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *ModelMean) UnmarshalText(b []byte) (err error) {
	*m, err = ParseModelMean(string(b))
	return err
}

// MarshalText implements encoding.TextMarshaler.
func (v ModelVar) MarshalText() ([]byte, error) { return marshalEnum(v.Valid(), v.String()) }

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *ModelVar) UnmarshalText(b []byte) (err error) {
	*v, err = ParseModelVar(string(b))
	return err
}

// MarshalText implements encoding.TextMarshaler.
func (l LossType) MarshalText() ([]byte, error) { return marshalEnum(l.Valid(), l.String()) }

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *LossType) UnmarshalText(b []byte) (err error) {
	*l, err = ParseLossType(string(b))
	return err
}

func marshalEnum(ok bool, s string) ([]byte, error) {
	if !ok {
		return nil, fmt.Errorf("diffusion: cannot marshal invalid %s", s)
	}
	return []byte(s), nil
}

// BetaSchedule names a family of β schedules.
type BetaSchedule int

const (
	// LinearBeta: β linear from BetaStart to BetaEnd (the paper).
	LinearBeta BetaSchedule = iota
	// CosineBeta: the cosine schedule of Nichol & Dhariwal.
	CosineBeta
	// ScaledLinearBeta: √β linear from √BetaStart to √BetaEnd (diffusers'
	// scaled_linear, the latent diffusion models' schedule).
	ScaledLinearBeta
	// GivenBeta: the β values of Config.Betas (diffusers' trained_betas).
	GivenBeta
)

var betaScheduleNames = []string{LinearBeta: "linear", CosineBeta: "cosine", ScaledLinearBeta: "scaled-linear", GivenBeta: "given"}

func (s BetaSchedule) String() string { return enumString(betaScheduleNames, int(s), "BetaSchedule") }

// ParseBetaSchedule parses "linear", "cosine", "scaled-linear" or "given".
func ParseBetaSchedule(s string) (BetaSchedule, error) {
	v, err := enumParse(betaScheduleNames, s, "beta schedule")
	return BetaSchedule(v), err
}

// MarshalText implements encoding.TextMarshaler.
func (s BetaSchedule) MarshalText() ([]byte, error) {
	return marshalEnum(s >= 0 && int(s) < len(betaScheduleNames), s.String())
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *BetaSchedule) UnmarshalText(b []byte) (err error) {
	*s, err = ParseBetaSchedule(string(b))
	return err
}
