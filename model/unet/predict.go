package unet

// Predict runs the network in inference mode (no dropout) on a batch of
// len(t) images: it is the ε_θ(x_t, t) (or μ̃, x0, and log-variance) the
// diffusion package's samplers and likelihood call.
func (u *UNet) Predict(out, xt []float32, t []int) {
	u.Forward(out, xt, t, len(t), false, nil)
}
