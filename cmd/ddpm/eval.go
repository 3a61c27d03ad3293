package main

import (
	"fmt"
	"os"
	"strings"
)

// evalCommands are the `ddpm eval <what>` measurements; each file adds its
// own in init (bpd, quality, …).
var evalCommands = map[string]command{}

func registerEval(name, summary string, run func(args []string) error) {
	evalCommands[name] = command{summary, run}
}

func init() {
	register("eval", "measure a model: "+"bits/dim (eval bpd), sample quality (eval quality)", runEval)
}

// runEval is `ddpm eval`: its help, and errors for a missing or unknown
// measurement. run starts a known measurement itself, under its own name.
func runEval(args []string) error {
	names := sortedNames(evalCommands)
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Println("usage: ddpm eval <what> [flags]\n\nwhat:")
		listCommands(os.Stdout, evalCommands)
		if len(args) == 0 {
			return usageErr("name what to evaluate: %s", strings.Join(names, ", "))
		}
		return nil
	}
	c, ok := evalCommands[args[0]]
	if !ok {
		return usageErr("unknown evaluation %q (have: %s)", args[0], strings.Join(names, ", "))
	}
	return c.run(args[1:])
}
