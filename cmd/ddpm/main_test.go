package main

import (
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

// TestVersion runs 'ddpm --version' and 'ddpm version' in-process: one line
// with the version, the Go version and the platform.
func TestVersion(t *testing.T) {
	want := regexp.MustCompile(`^ddpm \S.* \(` + regexp.QuoteMeta(runtime.Version()+", "+runtime.GOOS+"/"+runtime.GOARCH) + `\)\n$`)
	for _, arg := range []string{"--version", "version", "-version"} {
		code, out := runCaptured(t, arg)
		if code != 0 || !want.MatchString(out) {
			t.Errorf("ddpm %s: exit %d, stdout %q", arg, code, out)
		}
	}
	var code int
	errOut := captureStderr(t, func() { code, _ = runCaptured(t, "version", "extra") })
	if code != 2 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, `"extra"`) {
		t.Errorf("ddpm version extra: exit %d, stderr %q", code, errOut)
	}
}

func TestVersionLine(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	settings := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	for _, c := range []struct {
		bi   *debug.BuildInfo
		want string
	}{
		{nil, "ddpm (unknown version) (go1.26.8, linux/amd64)"},
		{&debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261203184502-0123456789ab+dirty"}, Settings: settings("true")},
			"ddpm v0.0.0-20261203184502-0123456789ab+dirty (go1.26.8, linux/amd64)"},
		{&debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}, Settings: settings("false")},
			"ddpm v1.2.0 0123456789ab (go1.26.8, linux/amd64)"},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: settings("true")},
			"ddpm (devel) 0123456789ab+dirty (go1.26.8, linux/amd64)"},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "ddpm (devel) (go1.26.8, linux/amd64)"},
	} {
		if got := versionLine(c.bi, "go1.26.8", "linux/amd64"); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}

// helpOf runs args in-process and returns the exit status, stdout and
// stderr.
func helpOf(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var code int
	var out string
	errOut := captureStderr(t, func() { code, out = runCaptured(t, args...) })
	return code, out, errOut
}

// helpTargets are the commands with a help of their own, sub-commands
// included ("eval bpd", "classifier train").
func helpTargets() [][]string {
	var all [][]string
	for _, name := range sortedNames(commands) {
		all = append(all, []string{name})
	}
	for _, name := range sortedNames(evalCommands) {
		all = append(all, []string{"eval", name})
	}
	return append(all, []string{"classifier", "train"}, []string{"classifier", "eval"})
}

// TestHelpCommand: 'ddpm help CMD [WHAT]' prints what 'ddpm CMD [WHAT]
// --help' does, with status 0; an unknown CMD is one line and status 2.
func TestHelpCommand(t *testing.T) {
	for _, args := range helpTargets() {
		code, want, _ := helpOf(t, append(slices.Clone(args), "--help")...)
		if code != 0 || !strings.HasPrefix(want, "usage: ddpm "+strings.Join(args, " ")) {
			t.Errorf("ddpm %s --help: exit %d, stdout %.80q", strings.Join(args, " "), code, want)
		}
		code, got, errOut := helpOf(t, append([]string{"help"}, args...)...)
		if code != 0 || got != want || errOut != "" {
			t.Errorf("ddpm help %s: exit %d, stdout %.80q (want %.80q), stderr %q", strings.Join(args, " "), code, got, want, errOut)
		}
	}
	overview := func(args ...string) {
		t.Helper()
		if code, out, _ := helpOf(t, args...); code != 0 || !strings.Contains(out, "ddpm help <command>") || !strings.Contains(out, "  train ") {
			t.Errorf("ddpm %s: exit %d, stdout %q", strings.Join(args, " "), code, out)
		}
	}
	overview("help")
	overview("--help")
	overview("help", "help")
	if code, out, _ := helpOf(t, "help", "version"); code != 0 || !strings.Contains(out, "--version") {
		t.Errorf("ddpm help version: exit %d, stdout %q", code, out)
	}
	code, out, errOut := helpOf(t, "help", "nope")
	if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, `ddpm help: unknown command "nope"`) {
		t.Errorf("ddpm help nope: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// An unknown measurement is eval's own usage error.
	if code, _, errOut := helpOf(t, "help", "eval", "nope"); code != 2 || !strings.Contains(errOut, `"nope"`) {
		t.Errorf("ddpm help eval nope: exit %d, stderr %q", code, errOut)
	}
}

// TestFlagHelpText: every flag's line in every command's help is "-name"
// and at most a one-word value placeholder. (The flag package takes the
// placeholder from the first `back-quoted` word of the help string, so a
// quoted command in one printed "-seed ddpm eval bpd --seed".)
func TestFlagHelpText(t *testing.T) {
	flagLine := regexp.MustCompile(`^  -\S+( \S+)?$`)
	for _, args := range helpTargets() {
		_, out, _ := helpOf(t, append(slices.Clone(args), "--help")...)
		for _, line := range strings.Split(out, "\n") {
			head, _, _ := strings.Cut(line, "\t") // one-letter bools keep their help on the line
			if strings.HasPrefix(head, "  -") && !flagLine.MatchString(strings.TrimRight(head, " ")) {
				t.Errorf("ddpm %s --help: flag line %q", strings.Join(args, " "), line)
			}
		}
	}
}
