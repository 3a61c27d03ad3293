package classifier

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/ddpm-go/ddpm/data"
)

// Confusion is a confusion matrix: Count[t][p] images of true class t
// predicted as p.
type Confusion struct {
	Count [][]int
}

// NewConfusion tallies the most probable class of each row of probs
// against labels, over k classes.
func NewConfusion(probs [][]float64, labels []int, k int) (*Confusion, error) {
	if len(probs) != len(labels) || len(probs) == 0 {
		return nil, fmt.Errorf("classifier: confusion of %d predictions against %d labels", len(probs), len(labels))
	}
	c := &Confusion{Count: make([][]int, k)}
	for i := range c.Count {
		c.Count[i] = make([]int, k)
	}
	for i, p := range Predictions(probs) {
		l := labels[i]
		if l < 0 || l >= k || p >= k {
			return nil, fmt.Errorf("classifier: label %d or prediction %d of image %d outside %d classes", l, p, i, k)
		}
		c.Count[l][p]++
	}
	return c, nil
}

// Accuracy is the share of the diagonal.
func (c *Confusion) Accuracy() float64 {
	right, all := 0, 0
	for t, row := range c.Count {
		for p, n := range row {
			all += n
			if p == t {
				right += n
			}
		}
	}
	return float64(right) / float64(max(all, 1))
}

// Recall is the share of class t's images predicted as t.
func (c *Confusion) Recall(t int) float64 {
	all := 0
	for _, n := range c.Count[t] {
		all += n
	}
	return float64(c.Count[t][t]) / float64(max(all, 1))
}

// Write prints the matrix (rows: true class, columns: predicted, in class
// order), each class's recall and the five most frequent confusions.
func (c *Confusion) Write(w io.Writer, names []string, title string) error {
	var err error
	printf := func(format string, a ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format, a...)
		}
	}
	k := len(c.Count)
	printf("test accuracy on %s: %.2f%%\n\n", title, 100*c.Accuracy())
	label := func(t int) string { return strconv.Itoa(t) + " " + names[t] }
	width := len("true \\ predicted")
	for t := range k {
		width = max(width, len(label(t)))
	}
	printf("%-*s  ", width, "true \\ predicted")
	for p := range k {
		printf("%5d", p)
	}
	printf("  recall\n")
	for t, row := range c.Count {
		printf("%-*s  ", width, label(t))
		for _, n := range row {
			printf("%5d", n)
		}
		printf("  %5.1f%%\n", 100*c.Recall(t))
	}
	type pair struct{ t, p, n int }
	var off []pair
	for t, row := range c.Count {
		for p, n := range row {
			if p != t && n > 0 {
				off = append(off, pair{t, p, n})
			}
		}
	}
	slices.SortStableFunc(off, func(a, b pair) int { return cmp.Compare(b.n, a.n) })
	if len(off) > 0 {
		printf("\nmost frequent confusions:\n")
		for _, o := range off[:min(5, len(off))] {
			printf("  %3d × %s taken for %s\n", o.n, names[o.t], names[o.p])
		}
	}
	return err
}

// ClassNames names the k classes of the data set spec: the emoji
// categories for emoji, the digit or number of the class otherwise.
func ClassNames(spec string, k int) []string {
	if kind, _, _ := strings.Cut(spec, ":"); kind == "emoji" && k == len(data.EmojiCategories()) {
		return data.EmojiCategories()
	}
	names := make([]string, k)
	for i := range names {
		names[i] = strconv.Itoa(i)
	}
	return names
}
