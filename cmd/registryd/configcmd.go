package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// cmdConfig is "registryd config check [config.yml]".
func cmdConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprint(stderr, "Usage: registryd config check [config.yml]\n")
		return 2
	}
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: registryd config check [config.yml]\n\nValidates the configuration (REGISTRY_* variables applied) and prints\nthe effective settings with secrets masked. Exits 1 if it is invalid.\n")
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg, ok := loadConfig(fs, stderr)
	if !ok {
		return 1
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	out, err := cfg.Dump()
	if err != nil {
		fmt.Fprintf(stderr, "registryd: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "# configuration is valid; effective settings (secrets masked):\n%s", out)
	return 0
}
