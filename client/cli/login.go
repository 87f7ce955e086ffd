package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/registryd/registryd/client"
)

func login() Command {
	return command("login", "[flags] HOST[:PORT]",
		"check credentials against a registry and store them in docker's config",
		`Checks a user name and password against the registry (Basic or token
auth, as docker login does) and stores them where docker, crane, regctl and
registryd look: $DOCKER_CONFIG/config.json (default ~/.docker), through its
credsStore or credHelpers when one is configured. A password on the command
line lands in the shell's history: prefer --password-stdin, or the prompt.

Examples:
  registryd login localhost:5000
  registryd login -u alice registry.example.com
  echo "$PASSWORD" | registryd login -u ci --password-stdin registry.example.com`,
		func(fs *flag.FlagSet, c *common) func(context.Context, *Streams, []string) error {
			var user, password string
			var stdin bool
			fs.StringVar(&user, "username", "", "user `name` (asked when missing and stdin is a terminal)")
			fs.StringVar(&user, "u", "", "short for --username")
			fs.StringVar(&password, "password", "", "`password` (insecure: prefer --password-stdin or the prompt)")
			fs.StringVar(&password, "p", "", "short for --password")
			fs.BoolVar(&stdin, "password-stdin", false, "read the password from stdin")
			return func(ctx context.Context, s *Streams, args []string) error {
				arg, err := oneArg(args, "registry (HOST[:PORT])")
				if err != nil {
					return err
				}
				ref, err := parseRef(arg, needRegistry)
				if err != nil {
					return err
				}
				if stdin && password != "" {
					return usagef("--password and --password-stdin are exclusive")
				}
				if user == "" {
					if !s.InTerminal || stdin {
						return usagef("--username is needed when stdin is not a terminal")
					}
					fmt.Fprint(s.Err, "Username: ")
					line, err := s.readLine(ctx)
					if err != nil && line == "" {
						return fmt.Errorf("no user name: %w", err)
					}
					user = strings.TrimSpace(line)
				}
				switch {
				case stdin:
					b, err := io.ReadAll(io.LimitReader(s.In, 64<<10))
					if err != nil {
						return err
					}
					password = strings.TrimRight(string(b), "\r\n")
				case password != "":
					fmt.Fprintln(s.Err, "warning: a password on the command line is visible to other users and kept in the shell's history; use --password-stdin")
				case s.ReadPassword != nil:
					fmt.Fprint(s.Err, "Password: ")
					p, err := s.ReadPassword(ctx)
					fmt.Fprintln(s.Err)
					if err != nil {
						return err
					}
					password = p
				default:
					return usagef("no password: give --password-stdin, or run on a terminal to be asked")
				}
				if user == "" || password == "" {
					return usagef("empty user name or password")
				}
				file, err := client.Login(ctx, c.options(), ref.Host, user, password)
				if err != nil {
					return err
				}
				fmt.Fprintf(s.Out, "Login succeeded: %s as %s (stored in %s)\n", ref.Host, user, file)
				return nil
			}
		})
}

func logout() Command {
	return command("logout", "HOST[:PORT]",
		"remove a registry's credentials from docker's config",
		`Removes the credentials stored for a registry from docker's config (or its
credential helper), as docker logout does.

Examples:
  registryd logout localhost:5000`,
		func(fs *flag.FlagSet, c *common) func(context.Context, *Streams, []string) error {
			return func(ctx context.Context, s *Streams, args []string) error {
				arg, err := oneArg(args, "registry (HOST[:PORT])")
				if err != nil {
					return err
				}
				ref, err := parseRef(arg, needRegistry)
				if err != nil {
					return err
				}
				had, file, err := client.Logout(ref.Host)
				if err != nil {
					return err
				}
				if !had {
					fmt.Fprintf(s.Out, "no credentials for %s in %s\n", ref.Host, file)
					return nil
				}
				fmt.Fprintf(s.Out, "removed the credentials for %s from %s\n", ref.Host, file)
				return nil
			}
		})
}
