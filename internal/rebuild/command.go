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
// Flag errors and help go to out; usage is the program's usage text.
func ParseCommand(program, usage string, args []string, out io.Writer) (name string, from int64, err error) {
	if len(args) == 0 {
		return "", 0, errors.New(usage)
	}
	name = args[0]
	fs := flag.NewFlagSet(program+" "+name, flag.ContinueOnError)
	fs.SetOutput(out)
	fromFlag := fs.Int64("from-position", -1, "replay: re-apply the events after this store position (0: all)")
	if err := fs.Parse(args[1:]); err != nil {
		return "", 0, err
	}
	if fs.NArg() > 0 {
		return "", 0, fmt.Errorf("%s: unexpected arguments %q", name, fs.Args())
	}
	switch name {
	case CommandRebuild:
		if *fromFlag != -1 {
			return "", 0, errors.New("rebuild: --from-position is a replay flag")
		}
	case CommandReplay:
		if *fromFlag < 0 {
			return "", 0, errors.New("replay: --from-position P (P ≥ 0) is required")
		}
	default:
		return "", 0, fmt.Errorf("unknown command %q\n%s", name, usage)
	}
	return name, *fromFlag, nil
}
