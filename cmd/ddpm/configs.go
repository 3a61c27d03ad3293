package main

import (
	"fmt"
	"strings"

	"github.com/ddpm-go/ddpm/model/unet"
)

// configHelp is the help text of a --config flag: what, then one line per
// named U-Net config with its description (resolution, channels, parameter
// count, purpose), so that --help lists them all.
func configHelp(what string) string {
	names := unet.ConfigNames()
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	var b strings.Builder
	b.WriteString(what + ", one of:")
	for _, n := range names {
		fmt.Fprintf(&b, "\n  %-*s  %s", width, n, unet.ConfigDescription(n))
	}
	return b.String() + "\n"
}
