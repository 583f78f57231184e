package rebuild

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// Subcommands of a projector binary.
const (
	CommandServe   = "serve"
	CommandRebuild = "rebuild"
	CommandReplay  = "replay"
)

// SubcommandOf is the subcommand a projector binary was started with
// (serve when there is none), checked before any configuration is read.
func SubcommandOf(args []string, usage string) (string, error) {
	if len(args) == 0 {
		return CommandServe, nil
	}
	switch args[0] {
	case CommandServe, CommandRebuild, CommandReplay:
		return args[0], nil
	}
	return "", fmt.Errorf("unknown command %q\n%s", args[0], usage)
}

// ParseCommand checks the command line of a projector's rebuild or replay
// (args[0] the subcommand, args[1:] its flags) before anything runs, and
// returns the subcommand and, for a replay, the position to replay after.
// Every error carries usage, the program's usage text; the flag package's
// own complaints and help go to out.
func ParseCommand(program, usage string, args []string, out io.Writer) (name string, from int64, err error) {
	if len(args) == 0 {
		return "", 0, errors.New(usage)
	}
	name = args[0]
	fail := func(format string, a ...any) (string, int64, error) {
		return "", 0, fmt.Errorf(format+"\n%s", append(a, usage)...)
	}
	if name != CommandRebuild && name != CommandReplay {
		return fail("unknown command %q", name)
	}
	fs := flag.NewFlagSet(program+" "+name, flag.ContinueOnError)
	fs.SetOutput(out)
	fromFlag := fs.Int64("from-position", -1, "replay: re-apply the events after this store position (0: all)")
	if err := fs.Parse(args[1:]); err != nil {
		return fail("%s: %w", name, err)
	}
	if fs.NArg() > 0 {
		return fail("%s: unexpected arguments %q", name, fs.Args())
	}
	if name == CommandRebuild && *fromFlag != -1 {
		return fail("rebuild: --from-position is a replay flag")
	}
	if name == CommandReplay && *fromFlag < 0 {
		return fail("replay: --from-position P (P ≥ 0) is required")
	}
	return name, *fromFlag, nil
}
