package main

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/registryd/registryd/client"
	"github.com/registryd/registryd/client/cli"
)

// clientCommands are the registry client's commands (client/cli), as
// entries of the command table.
func clientCommands() []*command {
	cli.Version = version
	var out []*command
	for _, c := range cli.Commands() {
		out = append(out, clientCommand(c))
	}
	return out
}

func clientCommand(c cli.Command) *command {
	return &command{
		name:    c.Name,
		args:    c.Args,
		summary: c.Summary,
		about:   c.About,
		client:  true,
		flags: func(fs *flag.FlagSet) runFunc {
			run := c.Flags(fs)
			return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
				return run(ctx, cli.NewStreams(os.Stdin, stdout, stderr), args)
			}
		},
	}
}

// remoteGC tells `registryd gc HOST` (a collection on a running registryd,
// through its admin API) from `registryd gc [config.yml]` (the offline
// garbage-collect, whose alias gc is): the first argument that is not a
// flag names a registry when it is not a file and reads as HOST[:PORT].
func remoteGC(args []string) bool {
	valueFlags := map[string]bool{"workers": true, "format": true, "ca": true}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if i+1 < len(args) {
				return isRegistryArg(args[i+1])
			}
			return false
		}
		if strings.HasPrefix(a, "-") {
			name := strings.TrimLeft(a, "-")
			if valueFlags[name] && !strings.Contains(name, "=") {
				i++
			}
			continue
		}
		return isRegistryArg(a)
	}
	return false
}

func isRegistryArg(a string) bool {
	switch strings.ToLower(filepath.Ext(a)) {
	case ".yml", ".yaml", ".json":
		return false
	}
	if _, err := os.Stat(a); err == nil {
		return false
	}
	r, err := client.ParseReference(a)
	return err == nil && r.Repository == ""
}
