package main

import (
	"context"
	"fmt"
	"io"
)

// cmdConfigCheck is "registryd config check [config.yml]".
func cmdConfigCheck(_ context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, ok := loadConfig("config check", args, stderr)
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
