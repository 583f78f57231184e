package rebuilder

import (
	"context"
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
	name, from, err := rebuild.ParseCommand("projector-stats", Usage, args, out)
	if err != nil {
		return err
	}
	var tr rebuild.Tracker
	if name == rebuild.CommandReplay {
		if err := r.Replay(ctx, from, &tr, rebuild.PrintProgress(out)); err != nil {
			return fmt.Errorf("replay from position %d: %w", from, err)
		}
		return nil
	}
	res, err := r.Rebuild(ctx, &tr, rebuild.PrintProgress(out))
	if err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	p := tr.Get()
	fmt.Fprintf(out, "namespace %s is live (was %s): %d events in %s, %d applied after the swap; %d old keys and %d stale keys deleted\n",
		res.Namespace, res.OldNamespace, p.Events, p.FinishedAt.Sub(p.StartedAt).Round(1e6), p.CaughtUpAfter, res.OldKeysDeleted, res.StaleKeysDeleted)
	return nil
}
