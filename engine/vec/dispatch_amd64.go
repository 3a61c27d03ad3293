//go:build amd64 && !purego

package vec

import (
	"os"

	"golang.org/x/sys/cpu"
)

// useAVX512 selects the generated kernels (vec_amd64.s). DDPM_PUREGO=1 turns
// them off, as it does the GEMM's, to test the portable code on this CPU.
var useAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ && os.Getenv("DDPM_PUREGO") != "1"
