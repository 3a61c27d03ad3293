//go:build !linux

package weights

import "testing"

func mountTmpfs(t *testing.T, size string) string {
	t.Skip("needs a Linux tmpfs")
	return ""
}
