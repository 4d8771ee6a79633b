package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/internal/engine/replicate"
)

// maxListed bounds the failures and deferrals repeated under the table.
const maxListed = 20

func writeJSON(w io.Writer, rep *reconcile.Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// printReport prints one row per source certificate and backup (and per orphan), then
// a summary per backup, the failures and deferrals again with their reasons, and the
// verdict.
func printReport(w io.Writer, rep *reconcile.Report) {
	if rep.Error != "" {
		fmt.Fprintf(w, "%s: %s\n", rep.Mode, clean(rep.Error))
		fmt.Fprintf(w, "%s: nothing was planned or written\n", rep.Mode)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSOURCE\tBACKUP\tOUTCOME\tDETAIL")
	for _, res := range rep.Results {
		name := res.Name
		if res.SourceCRN == "" {
			name = "(all)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", clean(name), shortID(res.SourceCRN), region(res.Backup), outcomeText(res), clean(detail(res)))
	}
	tw.Flush()

	fmt.Fprintf(w, "\nsource %s: %s\n", clean(rep.SourceInstanceCRN), plural(rep.SourceCertificates, "certificate"))
	for _, b := range rep.Backups {
		if b.Error != "" {
			fmt.Fprintf(w, "backup %s (%s): %s\n", region(b.InstanceCRN), clean(b.InstanceCRN), clean(b.Error))
			continue
		}
		fmt.Fprintf(w, "backup %s (%s): %s listed; %s\n", region(b.InstanceCRN), clean(b.InstanceCRN), plural(b.Certificates, "certificate"), counts(b.Counts))
	}
	if n := len(rep.Conflicts); n > 0 {
		fmt.Fprintf(w, "%s beside a certificate of the same name that is not a copy (left untouched)\n", plural(n, "copy"))
	}
	listResults(w, "failed", rep.Failures)
	listResults(w, "deferred to the next run", rep.Deferred)
	fmt.Fprintln(w, verdict(rep))
}

func listResults(w io.Writer, title string, rs []reconcile.Result) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(w, "%s: %d\n", title, len(rs))
	for i, res := range rs {
		if i == maxListed {
			fmt.Fprintf(w, "  ... and %d more (--json for all)\n", len(rs)-maxListed)
			break
		}
		name := res.Name
		if res.SourceCRN == "" {
			name = "(every certificate)"
		}
		fmt.Fprintf(w, "  %s -> %s: %s\n", clean(name), region(res.Backup), clean(res.Message))
	}
}

func verdict(rep *reconcile.Report) string {
	work := rep.Counts[reconcile.Planned]
	switch rep.Mode {
	case reconcile.ModeVerify:
		if rep.Match {
			return "verify: the backups match the source"
		}
		msg := fmt.Sprintf("verify: the backups do NOT match the source (%s to carry out", plural(work, "step"))
		if n := len(rep.Failures) + len(rep.Deferred); n > 0 {
			msg += fmt.Sprintf("; %d could not be compared", n)
		}
		return msg + ")"
	case reconcile.ModeDryRun:
		return fmt.Sprintf("dry run: %s would be carried out; nothing was written", plural(work, "step"))
	}
	if len(rep.Failures) == 0 && len(rep.Deferred) == 0 {
		return "reconcile: done, the backups match the source"
	}
	return fmt.Sprintf("reconcile: %d failed, %d deferred to the next run", len(rep.Failures), len(rep.Deferred))
}

var actionWords = map[reconcile.Action]string{
	reconcile.ActionImport:           "import",
	reconcile.ActionReimport:         "reimport",
	reconcile.ActionUpdate:           "update labels",
	reconcile.ActionRemoveDuplicates: "remove duplicates",
	reconcile.ActionDeleteOrphan:     "delete orphan",
}

func outcomeText(res reconcile.Result) string {
	switch res.Outcome {
	case reconcile.Planned:
		return "would " + actionWords[res.Action]
	case reconcile.OrphanKept:
		return "orphan kept"
	}
	return string(res.Outcome)
}

func detail(res reconcile.Result) string {
	switch res.Outcome {
	case replicate.Failed, reconcile.Deferred:
		return res.Message
	case reconcile.Planned, reconcile.OrphanKept, replicate.Skipped:
		if res.Message != "" {
			return res.Message
		}
		return res.Reason
	}
	var parts []string
	if n := len(res.Conflicts); n > 0 {
		parts = append(parts, fmt.Sprintf("beside %s of the same name without our marker", plural(n, "certificate")))
	}
	if n := len(res.RemovedDuplicates); n > 0 {
		parts = append(parts, "removed "+plural(n, "duplicate"))
	}
	if res.Outcome != replicate.Unchanged && res.Reason != "" {
		parts = append(parts, res.Reason)
	}
	return strings.Join(parts, "; ")
}

func counts(m map[reconcile.Outcome]int) string {
	if len(m) == 0 {
		return "nothing to do"
	}
	var parts []string
	for _, o := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%d %s", m[o], o))
	}
	return strings.Join(parts, ", ")
}

func region(instanceOrCert string) string {
	c, err := crn.Parse(instanceOrCert)
	if err != nil {
		return "?"
	}
	return c.Region
}

// clean keeps text from the service (names, messages) from moving the terminal:
// control characters, escape sequences included, become spaces.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
}
