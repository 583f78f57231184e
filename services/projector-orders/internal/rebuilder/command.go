package rebuilder

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/escqrs/platform/internal/rebuild"
)

// Usage describes the subcommands.
const Usage = `usage:
  projector-orders                              consume into the Postgres read models (serve)
  projector-orders rebuild                      rebuild the read models into fresh tables and swap them in
  projector-orders replay --from-position P     re-apply every event after store position P to the live tables`

// Command runs the subcommand args[0] ("rebuild" or "replay") with its
// flags args[1:], printing progress to out about once a second and a
// summary at the end. It returns nil only if the subcommand succeeded.
func Command(ctx context.Context, r *Rebuilder, args []string, out io.Writer) error {
	name, from, err := rebuild.ParseCommand("projector-orders", Usage, args, out)
	if err != nil {
		return err
	}
	var tr rebuild.Tracker
	if name == rebuild.CommandReplay {
		n, err := r.Replay(ctx, from, &tr, rebuild.PrintProgress(out))
		if err != nil {
			return err
		}
		p := tr.Get()
		fmt.Fprintf(out, "replayed %d events after position %d (read %d) in %s\n", n, from, p.Events, p.FinishedAt.Sub(p.StartedAt).Round(time.Millisecond))
		return nil
	}
	res, err := r.Rebuild(ctx, &tr, rebuild.PrintProgress(out))
	if err != nil {
		return err
	}
	p := tr.Get()
	fmt.Fprintf(out, "rebuilt orders_view (%d rows), accounts_balance (%d), account_activity (%d) from %d events up to position %d in %s "+
		"(fill %s, final rows and indexes %s, swap %s); the catch-up after the swap read %d events\n",
		res.Orders, res.Accounts, res.Activity, res.Events, res.Position, p.FinishedAt.Sub(p.StartedAt).Round(time.Millisecond),
		res.FillDuration.Round(time.Millisecond), res.FinishDuration.Round(time.Millisecond), res.SwapDuration.Round(time.Millisecond),
		p.CaughtUpAfter)
	return nil
}
