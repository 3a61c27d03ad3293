// Package diffusion is the mathematics of Denoising Diffusion Probabilistic
// Models (Ho, Jain & Abbeel 2020, arXiv:2006.11239): the noise schedule, the
// forward process q, the reverse process p_θ under each parameterisation of
// the network output, ancestral sampling (Algorithm 2), the training
// objectives with their gradients, and the variational bound in bits/dim.
// Equation numbers in the doc comments are the paper's; the layout follows
// openai/improved-diffusion's gaussian_diffusion.py, one function per
// quantity.
//
// # Index convention
//
// The paper numbers timesteps t = 1..T. This package (like the official code
// and the PyTorch reference) uses the 0-based index i = t−1 ∈ [0, T)
// everywhere: in every schedule array (Betas[i] = β_{i+1},
// AlphasCumprod[i] = ᾱ_{i+1}, AlphasCumprodPrev[i] = ᾱ_i with ᾱ_0 = 1), in
// every t []int argument, and in the timestep fed to the network, which
// therefore sees i ∈ [0, T). Index 0 is the paper's t = 1: the last sampling
// step (no noise is added) and the decoder term L_0 of the bound.
//
// # Data layout
//
// Batches are flat float32 slices of n images of D = C·H·W values each,
// image-major (image b occupies [b·D, (b+1)·D)); t holds one index per image.
// A [Model] writes D values per image for a fixed variance, and 2·D values per
// image for a [Learned] variance: image b occupies [b·2D, (b+1)·2D), its first
// D values (the first C channels) are the mean part (ε, x0 or μ depending on
// [ModelMean]) and its last D values (the last C channels) are the per-pixel
// log-variance log σ² used directly (Table 2's "learned diagonal Σ"). A
// [Fitted] variance needs no extra output: it is measured on a trained
// network's errors afterwards ([VarianceFit]) and depends on the step and on
// each value's predicted x̂0.
//
// Schedule constants are float64 (as in the official code); per-element
// arithmetic is done in float64 and stored as float32.
//
// # Units
//
// Every likelihood quantity (VBTerms, PriorBPD, CalcBPDLoop, the VLB and
// hybrid training losses) is in bits per dimension: nats averaged over the D
// dimensions of an image, divided by ln 2.
package diffusion
