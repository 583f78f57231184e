package rebuilder

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/escqrs/platform/internal/rebuild"
)

// Usage describes the subcommands.
const Usage = `usage:
  projector-stats                                 consume into the stats model (serve)
  projector-stats rebuild                         rebuild the stats model into a new namespace and switch to it
  projector-stats replay --from-position P        re-apply every event after position P to the live model`

// Command runs the subcommand args[0] ("rebuild" or "replay") with its
// flags args[1:], printing progress to out every second and a summary at the
// end. It returns nil only if the subcommand succeeded.
func Command(ctx context.Context, r *Rebuilder, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New(Usage)
	}
	fs := flag.NewFlagSet("projector-stats "+args[0], flag.ContinueOnError)
	fs.SetOutput(out)
	from := fs.Int64("from-position", -1, "replay: re-apply the events after this store position (0: all)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", args[0], fs.Args())
	}
	var tr rebuild.Tracker
	switch args[0] {
	case "rebuild":
		if *from != -1 {
			return errors.New("rebuild: --from-position is a replay flag")
		}
		res, err := r.Rebuild(ctx, &tr, rebuild.PrintProgress(out))
		if err != nil {
			return fmt.Errorf("rebuild: %w", err)
		}
		p := tr.Get()
		fmt.Fprintf(out, "namespace %s is live (was %s): %d events in %s, %d applied after the swap; %d old keys and %d stale keys deleted\n",
			res.Namespace, res.OldNamespace, p.Events, p.FinishedAt.Sub(p.StartedAt).Round(1e6), p.CaughtUpAfter, res.OldKeysDeleted, res.StaleKeysDeleted)
		return nil
	case "replay":
		if *from < 0 {
			return errors.New("replay: --from-position P (P ≥ 0) is required")
		}
		if err := r.Replay(ctx, *from, &tr, rebuild.PrintProgress(out)); err != nil {
			return fmt.Errorf("replay from position %d: %w", *from, err)
		}
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], Usage)
}
