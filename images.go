package ddpm

import (
	"image"
	"image/color"

	"golang.org/x/image/draw"
)

// ImageTensor converts pictures of any size (a photo, a drawing) to c-channel
// res×res model inputs, as the data sets are made: each is centre-cropped to
// a square, resized (Catmull-Rom), made grey by luminance (c = 1) or RGB
// (c = 3), quantised to 8 bits and mapped to [−1, 1]. Use c =
// p.Channels() and res = p.Resolution() to feed a pipeline's methods.
func ImageTensor(imgs []image.Image, c, res int) *Tensor {
	t := &Tensor{Data: make([]float32, len(imgs)*c*res*res), N: len(imgs), C: c, H: res, W: res}
	for i, src := range imgs {
		fill(t.at(i), src, c, res)
	}
	return t
}

// fill writes the c×res×res values of src, cropped and resized, to x.
func fill(x []float32, src image.Image, c, res int) {
	b := src.Bounds()
	s := min(b.Dx(), b.Dy())
	crop := image.Rect(b.Min.X+(b.Dx()-s)/2, b.Min.Y+(b.Dy()-s)/2, 0, 0)
	crop.Max = crop.Min.Add(image.Pt(s, s))
	dst := image.NewRGBA(image.Rect(0, 0, res, res))
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, crop, draw.Src, nil)
	for y := range res {
		for xx := range res {
			px := dst.At(xx, y)
			if c == 1 {
				g := color.GrayModel.Convert(px).(color.Gray)
				x[y*res+xx] = float32(g.Y)/127.5 - 1
				continue
			}
			r, g, bl, _ := px.RGBA()
			for ch, v := range []uint32{r, g, bl} {
				x[ch*res*res+y*res+xx] = float32(v>>8)/127.5 - 1
			}
		}
	}
}
