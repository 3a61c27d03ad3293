// Command ddpm trains, samples and measures Denoising Diffusion Probabilistic
// Models (Ho, Jain, Abbeel 2020) on the CPU, with the project's own engine.
//
//	ddpm train   --data mnist --config small --steps 3000 --out runs/mnist
//	ddpm sample  --model runs/mnist --n 64 --out samples.png
//	ddpm bench   --config small --batch 32 --json
//
// Every subcommand takes --help; 'ddpm help CMD' prints the same, and
// 'ddpm --version' the version. Errors are one line on stderr and a non-zero
// exit status; nothing panics on bad input.
//
// Exit status:
//
//	0  success, including a training run stopped by SIGINT or SIGTERM after
//	   it wrote its checkpoint (continue it with --resume)
//	1  an error: bad data, an unreadable or corrupt checkpoint, a failed
//	   write, a non-finite loss, …
//	2  a usage error: unknown command or flag, a value out of range
//	3  an internal error: a bug (a panic caught by main); set GOTRACEBACK
//	   to also get its stack trace
//
// A second SIGINT or SIGTERM while the first is being handled ends the
// process at once, by the signal; checkpoint writes are atomic, so that
// loses nothing but the checkpoint being written.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"

	"github.com/ddpm-go/ddpm/internal/text"
)

// command is one subcommand: its flags are parsed by run itself.
type command struct {
	summary string
	run     func(args []string) error
}

// commands holds every subcommand; each file registers its own in init, so
// adding a command touches no shared file.
var commands = map[string]command{}

func register(name, summary string, run func(args []string) error) {
	commands[name] = command{summary, run}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "ddpm — denoising diffusion probabilistic models on the CPU\n\nusage: ddpm <command> [flags]\n\ncommands:\n")
	listCommands(w, commands)
	fmt.Fprintf(w, "\nRun 'ddpm help <command>' (or 'ddpm <command> --help') for a command's flags,\n'ddpm --version' for the version.\n")
}

// listCommands prints one line per command of cmds, in name order, the
// summaries aligned after the longest name.
func listCommands(w io.Writer, cmds map[string]command) {
	names := sortedNames(cmds)
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	for _, n := range names {
		fmt.Fprintf(w, "  %-*s  %s\n", width, n, cmds[n].summary)
	}
}

// errUsage marks errors caused by the command line (exit status 2).
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		usage(os.Stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "-h", "--help", "-help":
		usage(os.Stdout)
		return 0
	case "help":
		return runHelp(args[1:])
	case "version", "--version", "-version":
		if len(args) > 1 {
			fmt.Fprintf(os.Stderr, "ddpm version: unexpected argument %q\n", args[1])
			return 2
		}
		fmt.Println(version())
		return 0
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "ddpm: unknown command %q (commands: %s)\n", name, strings.Join(sortedNames(commands), ", "))
		return 2
	}
	// A known measurement of `ddpm eval <what>` runs under its own name,
	// so that its errors read "ddpm eval bpd: …"; runEval handles the rest
	// (help, unknown names).
	if name == "eval" && len(args) > 1 {
		if c, ok := evalCommands[args[1]]; ok {
			return runCommand(name+" "+args[1], c, args[2:])
		}
	}
	return runCommand(name, cmd, args[1:])
}

// runHelp is 'ddpm help [CMD [WHAT]]': the command list, or what
// 'ddpm CMD [WHAT] --help' prints (e.g. 'ddpm help eval bpd').
func runHelp(args []string) int {
	if len(args) == 0 || slices.Contains([]string{"help", "-h", "--help", "-help"}, args[0]) {
		usage(os.Stdout)
		return 0
	}
	switch name := args[0]; {
	case name == "version":
		fmt.Println("usage: ddpm --version (or ddpm version)\n\nPrints the module version, its VCS revision, the Go version and the platform.")
		return 0
	case commands[name].run == nil:
		fmt.Fprintf(os.Stderr, "ddpm help: unknown command %q (commands: %s)\n", name, strings.Join(sortedNames(commands), ", "))
		return 2
	}
	return run(append(slices.Clone(args), "--help"))
}

// version is the --version line: the module version and VCS revision the
// binary was built from, the Go version and the platform, e.g.
// "ddpm v0.0.0-20261203101500-0123456789ab (go1.26.8, linux/amd64)".
func version() string {
	bi, _ := debug.ReadBuildInfo()
	return versionLine(bi, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH)
}

// versionLine formats version's line from build information (nil when the
// binary has none).
func versionLine(bi *debug.BuildInfo, goVersion, platform string) string {
	v, rev, modified := "", "", false
	if bi != nil {
		v = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(unknown version)"
	}
	// Module pseudo-versions already hold the revision's first 12 digits
	// (and +dirty for a modified tree); other builds get it added.
	if short := rev[:min(len(rev), 12)]; short != "" && !strings.Contains(v, short) {
		v += " " + short
		if modified {
			v += "+dirty"
		}
	}
	return fmt.Sprintf("ddpm %s (%s, %s)", v, goVersion, platform)
}

// exitInternal is the status of a caught panic.
const exitInternal = 3

// runCommand runs cmd and maps its result to an exit status. A panic is a
// bug, not a user error: it is caught here and reported as one line with
// status 3 instead of a stack trace a user cannot act on. Every known bad
// input has its own error message; this is only the net under the rest.
// Panics in goroutines other than the command's own cannot be caught here.
func runCommand(name string, cmd command, args []string) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "ddpm %s: internal error: %s (this is a bug; please report it with the command line)\n", name, oneLine(fmt.Sprint(r)))
			if tb := os.Getenv("GOTRACEBACK"); tb != "" && tb != "none" && tb != "0" {
				os.Stderr.Write(debug.Stack())
			}
			code = exitInternal
		}
	}()
	stop, err := startProfile(os.Getenv("DDPM_CPUPROFILE"))
	if err == nil {
		err = cmd.run(args)
		if perr := stop(); err == nil {
			err = perr
		}
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "ddpm %s: %v\n", name, withoutName(name, strings.TrimPrefix(err.Error(), "usage: ")))
		return 2
	default:
		fmt.Fprintf(os.Stderr, "ddpm %s: %s\n", name, withoutName(name, oneLine(err.Error())))
		return 1
	}
}

// startProfile writes a CPU profile of the command to path (go tool pprof
// reads it) when path is not empty: DDPM_CPUPROFILE=FILE ddpm sample … shows
// where a whole command's time goes, beyond what the layer benchmarks time.
func startProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("DDPM_CPUPROFILE: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("DDPM_CPUPROFILE: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("DDPM_CPUPROFILE: %w", err)
		}
		return nil
	}, nil
}

// withoutName drops a leading "name: " from an error message: the
// experiment and classifier packages prefix their errors with the name
// that is also the command's, and "ddpm classifier: classifier: …" would
// say it twice.
func withoutName(name, msg string) string {
	return strings.TrimPrefix(msg, name+": ")
}

func sortedNames(cmds map[string]command) []string {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// oneLine folds a multi-line error message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// newFlags makes a subcommand's flag set: errors are returned, not printed
// with a stack of usage text, and --help prints the flags to stdout.
func newFlags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(os.Stdout, "usage: ddpm %s %s\n\nflags:\n", name, synopsis)
		fs.SetOutput(os.Stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parseFlags parses args and turns flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	// The flag package calls Usage on every parse error, not only on
	// --help: silence it while parsing and print the text only for --help,
	// so that a bad flag gets its one-line error and nothing more; with
	// the output discarded the flag package prints no error of its own.
	usage := fs.Usage
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout) // asked-for help goes to stdout
			usage()
			return err
		}
		return fmt.Errorf("%w: %v (see 'ddpm %s --help')", errUsage, err, fs.Name())
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q (see 'ddpm %s --help')", errUsage, fs.Arg(0), fs.Name())
	}
	return nil
}

// plural is text.Plural ("1 image", "2 images"), for this package's many
// messages that count things.
func plural(n int, noun string) string { return text.Plural(n, noun) }

// usageErr builds a usage error for out-of-range flag values.
func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}
