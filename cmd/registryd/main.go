// Command registryd is an OCI Distribution / Docker Registry V2 server.
//
//	registryd serve [config.yml]
//	registryd garbage-collect [--dry-run] [--delete-untagged] [--quiet] [--force] config.yml
//	registryd scrub [--repair] [--ratelimit RATE] [--quiet] config.yml
//	registryd config check [config.yml]
//	registryd version
//	registryd help [command]
//
// The commands, their flags and every help text come from one table
// (commands.go).
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return dispatch(ctx, args, stdout, stderr) // commands.go
}
