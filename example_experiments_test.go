package ddpm_test

import (
	"context"
	"fmt"
	"log"

	"github.com/ddpm-go/ddpm"
)

// Interpolate two test digits in latent space at t = 50 (Fig. 8 of the
// paper at a small t): the row's ends reconstruct the sources and λ = 0.5
// blends them. A drawing converted by [ddpm.ImageTensor] serves as well as
// a data image; one λ with the same seed gives that column (a λ slider).
func ExamplePipeline_Interpolate() {
	p, err := ddpm.Load("mnist")
	if err != nil {
		log.Fatal(err)
	}
	x, err := p.DataTensor("mnist", "test", 2)
	if err != nil {
		log.Fatal(err)
	}
	o := ddpm.InterpolateOptions{Steps: []int{50}, Lambdas: []float64{0, 0.5, 1}, Seed: 1}
	r, err := p.Interpolate(context.Background(), x.Slice(0, 1), x.Slice(1, 2), o)
	if err != nil {
		log.Fatal(err)
	}
	row := r.Rows[0]
	fmt.Printf("t = %d: %d images; the ends within 10 grey levels of the sources: %v\n", row.T, row.Images.N, row.RMSEA < 10 && row.RMSEB < 10)
	f := r.Figure() // the pixel-space row, then the latent row, sources at both ends
	fmt.Printf("figure: %d rows of %d images\n", f.Rows, f.Cols)
	// Output:
	// t = 50: 3 images; the ends within 10 grey levels of the sources: true
	// figure: 2 rows of 5 images
}
