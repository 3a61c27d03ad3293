package text

import "testing"

func TestPlural(t *testing.T) {
	for _, c := range []struct {
		n          int
		noun, want string
	}{
		{0, "channel", "0 channels"}, {1, "channel", "1 channel"}, {3, "channel", "3 channels"},
		{-1, "step", "-1 step"}, {2, "pass", "2 passes"}, {2, "batch", "2 batches"},
		{2, "entry", "2 entries"}, {2, "day", "2 days"}, {1, "image", "1 image"}, {30, "epoch", "30 epochs"},
	} {
		if got := Plural(c.n, c.noun); got != c.want {
			t.Errorf("Plural(%d, %q) = %q, want %q", c.n, c.noun, got, c.want)
		}
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int]string{
		0: "0", 950: "950", 999: "999", 1000: "1k", 44969: "45k", 280755: "281k", 999499: "999k",
		999500: "1M", 1224545: "1.22M", 35746307: "35.7M", 6472195: "6.47M", 2_500_000_000: "2.5G",
		-1500: "-1.5k", 7_000_000_000_000: "7000G",
	} {
		if got := Count(n); got != want {
			t.Errorf("Count(%d) = %q, want %q", n, got, want)
		}
	}
}
