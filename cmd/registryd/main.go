// Command registryd is an OCI Distribution / Docker Registry V2 server.
//
//	registryd serve [config.yml]
//	registryd garbage-collect [--dry-run] [--delete-untagged] config.yml
//	registryd config check [config.yml]
//	registryd version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `registryd: an OCI Distribution 1.1 / Docker Registry HTTP API V2 server

Usage:
  registryd serve [config.yml]          run the registry (no file: embedded default,
                                        :5000 with storage under ./data)
  registryd garbage-collect [flags] config.yml
                                        remove blobs no manifest references
  registryd config check [config.yml]   validate a config and print the effective
                                        settings (environment applied, secrets masked)
  registryd version                     print the version

Every configuration key can be overridden by REGISTRY_<KEY_PATH>, e.g.
REGISTRY_STORAGE_DELETE_ENABLED=true or REGISTRY_HTTP_ADDR=:5001.

Run 'registryd <command> --help' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], stdout, stderr)
	case "garbage-collect", "gc":
		return cmdGC(ctx, args[1:], stdout, stderr)
	case "config":
		return cmdConfig(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "registryd %s\n", version)
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "registryd: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
