package main

import (
	"fmt"
	"sort"
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

func runEval(args []string) error {
	names := make([]string, 0, len(evalCommands))
	for n := range evalCommands {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Println("usage: ddpm eval <what> [flags]\n\nwhat:")
		for _, n := range names {
			fmt.Printf("  %-10s %s\n", n, evalCommands[n].summary)
		}
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
