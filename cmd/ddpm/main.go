// Command ddpm trains, samples and measures Denoising Diffusion Probabilistic
// Models (Ho, Jain, Abbeel 2020) on the CPU, with the project's own engine.
//
//	ddpm train   --data mnist --config small --steps 3000 --out runs/mnist
//	ddpm sample  --model runs/mnist --n 64 --out samples.png
//	ddpm bench   --config small --batch 32 --json
//
// Every subcommand takes --help. Errors are one line on stderr and a non-zero
// exit status; nothing panics on bad input.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
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
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "\nRun 'ddpm <command> --help' for a command's flags.\n")
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
	if name == "help" || name == "-h" || name == "--help" || name == "-help" {
		usage(os.Stdout)
		return 0
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "ddpm: unknown command %q (commands: %s)\n", name, strings.Join(commandNames(), ", "))
		return 2
	}
	err := cmd.run(args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "ddpm %s: %v\n", name, strings.TrimPrefix(err.Error(), "usage: "))
		return 2
	default:
		fmt.Fprintf(os.Stderr, "ddpm %s: %s\n", name, oneLine(err.Error()))
		return 1
	}
}

func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
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
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.Usage()
			return err
		}
		return fmt.Errorf("%w: %v (see 'ddpm %s --help')", errUsage, err, fs.Name())
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q (see 'ddpm %s --help')", errUsage, fs.Arg(0), fs.Name())
	}
	return nil
}

// usageErr builds a usage error for out-of-range flag values.
func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}
