package nn

import "math"

// expf is a float32 e^x accurate to about 2 ulp (the Cephes expf
// polynomial). SiLU and the attention softmax take millions of exponentials
// per training step, and math.Exp's float64 path costs several times more.
// Inputs are clamped to where the float32 result is finite and normal, so
// expf(-∞) is tiny rather than 0 and expf(+∞) is large rather than +Inf;
// both only ever feed 1/(1+e) or a max-shifted softmax here.
func expf(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		ln2Hi = 0.693359375
		ln2Lo = -2.12194440e-4
	)
	x = min(max(x, -87.3), 88.3)
	// n = round(x/ln2); the +128 offset makes the truncating conversion
	// a floor (x/ln2 ≥ −126 after the clamp), which is several times
	// cheaper than math.Floor's float64 round trip.
	ni := int32(x*log2e+128.5) - 128
	n := float32(ni)
	r := x - n*ln2Hi - n*ln2Lo // x = n·ln2 + r, |r| ≤ ln2/2
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	p = p*r*r + r + 1
	return p * math.Float32frombits(uint32(ni+127)<<23)
}

// sigmoid is 1/(1+e^-x).
func sigmoid(x float32) float32 { return 1 / (1 + expf(-x)) }
