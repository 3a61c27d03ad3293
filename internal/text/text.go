// Package text formats counts for messages and help text.
package text

import (
	"strconv"
	"strings"
)

// Plural returns n and the noun, in the plural unless n is 1 or −1:
// Plural(1, "channel") is "1 channel", Plural(3, "channel") "3 channels".
// Nouns ending in s, x, z, ch or sh take "es", a consonant and y "ies".
func Plural(n int, noun string) string {
	return strconv.Itoa(n) + " " + Noun(n, noun)
}

// Noun is the noun alone, in the form Plural gives it for n.
func Noun(n int, noun string) string {
	if n == 1 || n == -1 || noun == "" {
		return noun
	}
	switch {
	case strings.HasSuffix(noun, "och"): // a hard ch: epochs
		return noun + "s"
	case strings.HasSuffix(noun, "s"), strings.HasSuffix(noun, "x"), strings.HasSuffix(noun, "z"),
		strings.HasSuffix(noun, "ch"), strings.HasSuffix(noun, "sh"):
		return noun + "es"
	case len(noun) > 1 && noun[len(noun)-1] == 'y' && !strings.ContainsRune("aeiou", rune(noun[len(noun)-2])):
		return noun[:len(noun)-1] + "ies"
	}
	return noun + "s"
}

// Count writes n with three significant digits and a k, M or G suffix
// from a thousand on: 950, 45k, 627k, 1.22M, 35.7M.
func Count(n int) string {
	const units = "kMG"
	x := float64(n)
	if x > -999.5 && x < 999.5 {
		return strconv.Itoa(n)
	}
	for i := 0; ; i++ {
		x /= 1000
		if x > -999.5 && x < 999.5 {
			return strconv.FormatFloat(x, 'g', 3, 64) + units[i:i+1]
		}
		if i == len(units)-1 {
			return strconv.FormatFloat(x, 'f', 0, 64) + units[i:i+1]
		}
	}
}
