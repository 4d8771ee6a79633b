package cli

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/internal/engine/replicate"
)

const (
	// maxListed bounds the failures and deferrals repeated under the summary.
	maxListed = 20
	// nameWidth is the widest a certificate name is printed, in characters: one long
	// name must not stretch every row.
	nameWidth = 40
	// fingerprintWidth is how much of a verified copy's fingerprint DETAIL shows.
	fingerprintWidth = 16
)

func writeJSON(w io.Writer, rep *reconcile.Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// printReport prints, with details, one row per source certificate and backup (and
// per orphan); then a summary per backup, the failures and deferrals again with their
// reasons, and the verdict.
func printReport(w io.Writer, rep *reconcile.Report, details bool) {
	if rep.Error != "" {
		fmt.Fprintf(w, "%s: %s\n", rep.Mode, clean(rep.Error))
		fmt.Fprintf(w, "%s: nothing was planned or written\n", rep.Mode)
		return
	}
	if details {
		printTable(w, rep.Results)
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "source %s (%s): %s\n", region(rep.SourceInstanceCRN), clean(rep.SourceInstanceCRN), plural(rep.SourceCertificates, "certificate"))
	perBackup := tally(rep.Results)
	for _, b := range rep.Backups {
		if b.Error != "" {
			fmt.Fprintf(w, "backup %s (%s): %s\n", region(b.InstanceCRN), clean(b.InstanceCRN), clean(b.Error))
			continue
		}
		fmt.Fprintf(w, "backup %s (%s): %s listed; %s\n", region(b.InstanceCRN), clean(b.InstanceCRN), plural(b.Certificates, "certificate"), cmp.Or(perBackup[b.InstanceCRN], "nothing to do"))
	}
	if n := len(rep.Conflicts); n > 0 {
		fmt.Fprintf(w, "%s beside certificates certbackup cannot prove are its copies (same name without a marker, or an unproven marker; left untouched)\n", plural(n, "copy"))
	}
	listResults(w, "failed", rep.Failures)
	listResults(w, "deferred to the next run", rep.Deferred)
	if n := rep.Counts[reconcile.Planned]; n > 0 && !details {
		fmt.Fprintf(w, "--details lists the %s\n", plural(n, "step"))
	}
	fmt.Fprintln(w, verdict(rep))
}

// printTable prints one row per result. VERIFIED says whether the copy was read back
// and found to hold the source certificate (yes), was read back and did not (NO), or
// was not written in this run (-).
func printTable(w io.Writer, results []reconcile.Result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSOURCE\tBACKUP\tOUTCOME\tVERIFIED\tDETAIL")
	for _, res := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", displayName(res, "(all)"), shortID(res.SourceCRN), region(res.Backup),
			outcomeText(res), verifiedText(res), clean(detail(res)))
	}
	tw.Flush()
}

// tally is, per backup, how many results of each outcome, in the table's words.
func tally(results []reconcile.Result) map[string]string {
	counts := map[string]map[string]int{}
	for _, res := range results {
		if res.SourceCRN == "" && res.Action == reconcile.ActionSkip {
			continue // the backup could not be listed: its line says so
		}
		if counts[res.Backup] == nil {
			counts[res.Backup] = map[string]int{}
		}
		counts[res.Backup][outcomeText(res)]++
	}
	out := map[string]string{}
	for b, m := range counts {
		var parts []string
		for _, o := range slices.Sorted(maps.Keys(m)) {
			parts = append(parts, fmt.Sprintf("%d %s", m[o], o))
		}
		out[b] = strings.Join(parts, ", ")
	}
	return out
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
		fmt.Fprintf(w, "  %s -> %s: %s\n", displayName(res, "(every certificate)"), region(res.Backup), clean(res.Message))
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
		if w, ok := actionWords[res.Action]; ok {
			return "would " + w
		}
		return "would " + strings.ReplaceAll(clean(string(res.Action)), "_", " ")
	case reconcile.OrphanKept:
		return "orphan kept"
	}
	return clean(string(res.Outcome))
}

func verifiedText(res reconcile.Result) string {
	switch {
	case res.Verified:
		return "yes"
	case res.ErrorClass == engine.ClassVerification:
		return "NO"
	}
	return "-"
}

// detail says why for what is not done (planned, skipped, kept, failed, deferred), and
// what was found for what is done: the plan's reason is stale once the step is carried
// out.
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
		parts = append(parts, fmt.Sprintf("beside %s that certbackup cannot prove are its copies", plural(n, "certificate")))
	}
	if n := len(res.RemovedDuplicates); n > 0 {
		parts = append(parts, "removed "+plural(n, "duplicate"))
	}
	if res.Message != "" {
		parts = append(parts, res.Message)
	}
	if res.Verified && res.Fingerprint != "" {
		parts = append(parts, "sha256 "+truncate(res.Fingerprint, fingerprintWidth))
	}
	return strings.Join(parts, "; ")
}

// displayName is the result's certificate name, safe for a terminal and at most
// nameWidth wide; whole for a result of no certificate (a backup that could not be
// listed).
func displayName(res reconcile.Result, whole string) string {
	if res.SourceCRN == "" {
		return whole
	}
	return truncate(clean(res.Name), nameWidth)
}

func region(instanceOrCert string) string {
	if c, err := crn.Parse(instanceOrCert); err == nil {
		return c.Region
	}
	if c, err := crn.ParseSecretsManager(instanceOrCert); err == nil {
		return clean(c.Region)
	}
	return "?"
}

// clean keeps text from the service (names, messages) from moving the terminal or
// reordering what it shows: control characters (C0, DEL and C1, escape sequences
// included) become spaces; bidirectional controls (U+202E RIGHT-TO-LEFT OVERRIDE and
// the like), other invisible format characters and line or paragraph separators
// become U+FFFD, which shows that something was there; so do invalid UTF-8 bytes.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case unicode.IsControl(r):
			return ' '
		case unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp):
			return utf8.RuneError
		}
		return r
	}, s)
}

// truncate cuts s to at most width characters, the last of them an ellipsis when
// anything was cut.
func truncate(s string, width int) string {
	if utf8.RuneCountInString(s) <= width {
		return s
	}
	runes := []rune(s)
	return string(runes[:width-1]) + "…"
}
