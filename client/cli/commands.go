package cli

import (
	"context"
	"flag"
)

// Commands returns the client commands, in the order help lists them.
func Commands() []Command {
	return []Command{
		repoLs(), tagLs(), imageInspect(), digestCmd(),
		tagRm(), manifestRm(), repoRm(),
		du(), prune(), gcCmd(),
		login(), logout(),
	}
}

// command builds a Command whose run gets the parsed common flags.
func command(name, args, summary, about string, flags func(fs *flag.FlagSet, c *common) func(ctx context.Context, s *Streams, args []string) error) Command {
	return Command{
		Name: name, Args: args, Summary: summary, About: about + "\n" + commonHelp,
		Flags: func(fs *flag.FlagSet) Run {
			c := &common{}
			run := flags(fs, c)
			c.define(fs)
			return func(ctx context.Context, s *Streams, args []string) int {
				return fail(s, name, run(ctx, s, args))
			}
		},
	}
}
