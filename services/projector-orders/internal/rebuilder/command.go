package rebuilder

import (
	"context"
	"errors"
	"flag"
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
	if len(args) == 0 {
		return errors.New(Usage)
	}
	fs := flag.NewFlagSet("projector-orders "+args[0], flag.ContinueOnError)
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
			return err
		}
		p := tr.Get()
		fmt.Fprintf(out, "rebuilt orders_view (%d rows), accounts_balance (%d), account_activity (%d) from %d events up to position %d in %s "+
			"(fill %s, final rows and indexes %s, swap %s); the catch-up after the swap read %d events\n",
			res.Orders, res.Accounts, res.Activity, res.Events, res.Position, p.FinishedAt.Sub(p.StartedAt).Round(time.Millisecond),
			res.FillDuration.Round(time.Millisecond), res.FinishDuration.Round(time.Millisecond), res.SwapDuration.Round(time.Millisecond),
			p.CaughtUpAfter)
		return nil
	case "replay":
		if *from < 0 {
			return errors.New("replay: --from-position P (P ≥ 0) is required")
		}
		n, err := r.Replay(ctx, *from, &tr, rebuild.PrintProgress(out))
		if err != nil {
			return err
		}
		p := tr.Get()
		fmt.Fprintf(out, "replayed %d events after position %d (read %d) in %s\n", n, *from, p.Events, p.FinishedAt.Sub(p.StartedAt).Round(time.Millisecond))
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], Usage)
}
