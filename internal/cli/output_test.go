package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/reconcile"
	"github.com/certbackup/certbackup/internal/engine/replicate"
	"github.com/stretchr/testify/assert"
)

// TestReportRows: what each kind of result prints in the table and the summary.
func TestReportRows(t *testing.T) {
	cert := func(id string) string { return strings.TrimSuffix(srcCRN, ":") + "certificate:" + id }
	step := func(id, name string, a reconcile.Action, reason string) reconcile.Step {
		return reconcile.Step{SourceCRN: cert(id), Name: name, Backup: bkCRN, Action: a, Reason: reason}
	}
	fp := strings.Repeat("ab", 32)
	tests := []struct {
		name string
		res  reconcile.Result
		row  string // the row, spaces collapsed
	}{
		{name: "imported and verified",
			res: reconcile.Result{Step: step("aaaaaaaaaaaaaaaa", "shop", reconcile.ActionImport, "no copy in the backup"), Outcome: replicate.Imported, Verified: true, Fingerprint: fp},
			row: "shop aaaaaaaaaaaa eu-de imported yes sha256 abababababababa…"},
		{name: "read back and found different",
			res: reconcile.Result{Step: step("b1", "api", reconcile.ActionReimport, "the copy holds another certificate"), Outcome: replicate.Failed,
				ErrorClass: engine.ClassVerification, Message: "the copy read back does not hold the source certificate"},
			row: "api b1 eu-de failed NO the copy read back does not hold the source certificate"},
		{name: "planned",
			res: reconcile.Result{Step: step("c1", "www", reconcile.ActionReimport, "the copy holds another certificate"), Outcome: reconcile.Planned},
			row: "www c1 eu-de would reimport - the copy holds another certificate"},
		{name: "labels updated, duplicates removed",
			res: reconcile.Result{Step: step("d1", "mail", reconcile.ActionUpdate, "other name"), Outcome: replicate.Updated, Verified: true, RemovedDuplicates: []string{"x", "y"}},
			row: "mail d1 eu-de updated yes removed 2 duplicates"},
		{name: "orphan kept",
			res: reconcile.Result{Step: step("e1", "old", reconcile.ActionKeepOrphan, "the source certificate is gone"), Outcome: reconcile.OrphanKept},
			row: "old e1 eu-de orphan kept - the source certificate is gone"},
		{name: "a backup that could not be listed",
			res: reconcile.Result{Step: reconcile.Step{Backup: bkCRN, Action: reconcile.ActionSkip}, Outcome: reconcile.Deferred, Message: "list: status 503"},
			row: "(all) - eu-de deferred - list: status 503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			printTable(&b, []reconcile.Result{tt.res})
			lines := strings.Split(strings.TrimSpace(b.String()), "\n")
			assert.Len(t, lines, 2)
			assert.Equal(t, tt.row, strings.Join(strings.Fields(lines[1]), " "))
		})
	}
}

// TestSummaryLines: the source line has no stray colons, plurals are English, and a
// conflict is counted in copies.
func TestSummaryLines(t *testing.T) {
	conflict := reconcile.Result{Step: reconcile.Step{SourceCRN: srcCRN + "x", Name: "n", Backup: bkCRN, Conflicts: []string{"c"}}, Outcome: replicate.Conflict}
	rep := &reconcile.Report{
		Mode: reconcile.ModeReconcile, SourceInstanceCRN: srcCRN, SourceCertificates: 6,
		Backups:   []reconcile.BackupReport{{BackupListing: reconcile.BackupListing{InstanceCRN: bkCRN, Certificates: 6}}},
		Results:   []reconcile.Result{conflict, conflict, conflict, conflict},
		Conflicts: []reconcile.Result{conflict, conflict, conflict, conflict},
		Counts:    map[reconcile.Outcome]int{replicate.Conflict: 4},
	}
	var b bytes.Buffer
	printReport(&b, rep, false)
	assert.Equal(t, "source us-south ("+srcCRN+"): 6 certificates\n"+
		"backup eu-de ("+bkCRN+"): 6 certificates listed; 4 conflict\n"+
		"4 copies beside certificates certbackup cannot prove are its copies (same name without a marker, or an unproven marker; left untouched)\n"+
		"reconcile: done, the backups match the source\n", b.String())
	assert.NotContains(t, b.String(), ":::")
}

func TestClean(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a\x1b[2Jb\nc\td", "a [2Jb c d"},
		{"é ok 日本", "é ok 日本"},
		{"abc\u202Edef", "abc\uFFFDdef"},
		{"\u202A\u202B\u202C\u202D\u2066\u2067\u2068\u2069\u200E\u200F\u061C", strings.Repeat("\uFFFD", 11)},
		{"zero\u200Bwidth\uFEFF", "zero\uFFFDwidth\uFFFD"},
		{"c1\u009b31m", "c1 31m"},
		{"del\x7f", "del "},
		{"bad\xffutf8", "bad\uFFFDutf8"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, clean(tt.in), "%q", tt.in)
	}
}

func TestTruncateAndPlural(t *testing.T) {
	assert.Equal(t, "abc", truncate("abc", 3))
	assert.Equal(t, "ab…", truncate("abcd", 3))
	assert.Equal(t, "日本…", truncate("日本語です", 3))
	for n, want := range map[int]string{0: "0 copies", 1: "1 copy", 4: "4 copies"} {
		assert.Equal(t, want, plural(n, "copy"))
	}
	assert.Equal(t, "2 certificates", plural(2, "certificate"))
	assert.Equal(t, "2 days", plural(2, "day"))
	assert.Equal(t, "2 ys", plural(2, "y"))
}
