package reconcile

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/certbackup/certbackup/internal/crn"
	"github.com/certbackup/certbackup/internal/engine"
	"github.com/certbackup/certbackup/internal/engine/match"
)

// listing is one backup's certificates, or why they could not be listed.
type listing struct {
	certs []engine.Certificate
	err   error
}

func plan(ctx context.Context, owner *match.Owner, source engine.Source, targets []engine.Target, opts Options) (*PlanResult, error) {
	srcInstance := source.Instance()
	// The source is listed at the same time as the backups: a listing is a sequence of
	// pages, and the instances are in different regions.
	var listed []engine.Certificate
	var err error
	var wg sync.WaitGroup
	wg.Go(func() { listed, err = source.List(ctx) })
	listings := listAll(ctx, targets, opts.Concurrency)
	wg.Wait()
	if err != nil {
		return nil, fmt.Errorf("list the source instance %s: %w", srcInstance, err)
	}
	sources := uniqueSorted(listed)
	present := make(map[string]bool, len(sources))
	for _, s := range sources {
		present[s.ID] = true
	}

	p := &PlanResult{SourceInstanceCRN: srcInstance, SourceCertificates: len(sources), Counts: map[Action]int{}}
	indexes := make([]*match.Index, len(targets))
	for i, t := range targets {
		bl := BackupListing{InstanceCRN: t.Instance(), Region: regionOf(t.Instance())}
		if l := listings[i]; l.err != nil {
			bl.Error = fmt.Sprintf("list the backup instance: %v", l.err)
			bl.ErrorClass = engine.ClassOf(l.err)
		} else {
			bl.Certificates = len(l.certs)
			indexes[i] = match.NewIndex(owner, t.Instance(), l.certs)
		}
		p.Backups = append(p.Backups, bl)
	}

	matched := make([]map[string]bool, len(targets)) // per backup: the IDs a source certificate took
	for i := range targets {
		matched[i] = map[string]bool{}
	}
	for _, s := range sources {
		subj := owner.Subject(srcInstance, s)
		for i, t := range targets {
			if indexes[i] == nil {
				continue
			}
			f := indexes[i].Lookup(subj)
			if f.Copy != nil {
				matched[i][f.Copy.ID] = true
			}
			for _, x := range f.Extra {
				matched[i][x.ID] = true
			}
			p.Steps = append(p.Steps, stepFor(owner, subj, i, t, f))
		}
	}
	for i, t := range targets {
		if indexes[i] == nil {
			continue
		}
		orphans := map[string][]engine.Certificate{}
		for _, c := range indexes[i].Proven() {
			// Only copies of this source instance can be orphans of it: a backup may also
			// hold copies of other sources, and those are none of this run's business.
			// An adopted certificate was not created by certbackup: never deleted.
			if !matched[i][c.ID] && !c.Marker.Adopted && !present[c.Marker.Source] && crn.ItemBelongsTo(c.Marker.Source, srcInstance) {
				orphans[c.Marker.Source] = append(orphans[c.Marker.Source], c)
			}
		}
		for _, src := range slices.Sorted(maps.Keys(orphans)) {
			p.Steps = append(p.Steps, orphanStep(src, i, t.Instance(), orphans[src], opts.Prune))
		}
	}
	for _, s := range p.Steps {
		p.Counts[s.Action]++
	}
	return p, nil
}

// uniqueSorted sorts the source listing by name then CRN (a stable, readable order for
// the report) and drops repeated CRNs, which a paging anomaly could produce and which
// would otherwise plan two writes (and two reimports) of the same copy.
func uniqueSorted(listed []engine.Certificate) []engine.Certificate {
	seen := make(map[string]bool, len(listed))
	out := make([]engine.Certificate, 0, len(listed))
	for _, c := range listed {
		if !seen[c.ID] {
			seen[c.ID] = true
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b engine.Certificate) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.ID, b.ID))
	})
	return out
}

// listAll lists the backups at once (at most limit at a time): each is in another
// region, and the plan needs them all.
func listAll(ctx context.Context, targets []engine.Target, limit int) []listing {
	out := make([]listing, len(targets))
	sem := make(chan struct{}, max(limit, 1))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			certs, err := t.List(ctx)
			out[i] = listing{certs: certs, err: err}
		})
	}
	wg.Wait()
	return out
}

func stepFor(owner *match.Owner, s match.Subject, target int, t engine.Target, f match.Found) Step {
	st := Step{
		SourceCRN: s.ID, Name: s.Name, Backup: t.Instance(),
		Conflicts: match.IDs(f.Conflicts), Duplicates: match.IDs(removable(s, f.Extra)),
		target: target, src: s, found: f,
	}
	if f.Copy != nil {
		st.CopyCRN = f.Copy.ID
	}
	switch {
	case s.State == engine.Pending:
		// An ordered certificate still pending has no material to copy; its issuance
		// sends a notification, and the next run copies it anyway.
		st.Action, st.Reason = ActionSkip, fmt.Sprintf("the source certificate has no issued certificate yet (%s)", s.StateReason)
	case s.State == engine.Expired && (f.Copy == nil || !engine.SameCertificate(s.Certificate, *f.Copy)):
		// The provider refuses to hand out (and to take in) an expired certificate:
		// trying would fail on every run and hide real failures.
		st.Action, st.Reason = ActionSkip, "the source certificate has expired; the service does not let it be downloaded or imported"
	case s.State == engine.Inactive:
		st.Action, st.Reason = ActionSkip, fmt.Sprintf("the source certificate is not active (%s)", s.StateReason)
	case f.Adopt && engine.SameCertificate(s.Certificate, *f.Copy):
		st.Action, st.Reason = ActionAdopt, "a certificate carries this source's marker without a valid proof; it is adopted if it holds the source's certificate and key"
	case f.Adopt:
		// It holds another certificate: not ours, whatever its marker says.
		st.Conflicts = append(st.Conflicts, f.Copy.ID)
		st.CopyCRN, st.found.Copy, st.found.Adopt = "", nil, false
		st.found.Conflicts = append(st.found.Conflicts, *f.Copy)
		st.Action, st.Reason = ActionImport, "no copy in the backup (a certificate claims to be one without a valid proof)"
	case f.Copy == nil:
		st.Action, st.Reason = ActionImport, "no copy in the backup"
	case match.Unwritable(s, f):
		st.Action, st.Reason = ActionSkip, match.UnwritableMessage
	case match.KeepsNewer(s, f):
		st.Action, st.Reason = ActionKeepNewer, NewerMessage
	case !engine.SameCertificate(s.Certificate, *f.Copy):
		st.Action, st.Reason = ActionReimport, "the copy holds another certificate ("+engine.CertificateDiff(s.Certificate, *f.Copy)+")"
	case engine.LabelsOf(*f.Copy) != owner.WantFor(t, s, f):
		st.Action, st.Reason = ActionUpdate, labelDiff(owner.WantFor(t, s, f), engine.LabelsOf(*f.Copy))
	case len(removable(s, f.Extra)) > 0:
		st.Action, st.Reason = ActionRemoveDuplicates, fmt.Sprintf("%d further copies of the same certificate", len(removable(s, f.Extra)))
	default:
		st.Action = ActionNone
		if len(st.found.Conflicts) > 0 {
			st.Reason = conflictReason(s, st.found.Conflicts)
		}
	}
	return st
}

// conflictReason says why each conflict is left alone.
func conflictReason(s match.Subject, conflicts []engine.Certificate) string {
	var parts []string
	for _, c := range conflicts {
		why := "has the source's name and no certbackup marker"
		if c.Marker != nil {
			why = "carries a certbackup marker that certbackup cannot prove"
		}
		parts = append(parts, c.ID+" "+why)
	}
	return "left alone (not certbackup's copies): " + strings.Join(parts, "; ")
}

// removable are the extra copies that can be deleted without losing anything: they
// hold the source's certificate.
func removable(s match.Subject, extra []engine.Certificate) []engine.Certificate {
	var out []engine.Certificate
	for _, x := range extra {
		if engine.SameCertificate(s.Certificate, x) && !x.Marker.Adopted {
			out = append(out, x)
		}
	}
	return out
}

func orphanStep(src string, target int, backup string, copies []engine.Certificate, prune bool) Step {
	st := Step{
		SourceCRN: src, Name: copies[0].Name, Backup: backup, CopyCRN: copies[0].ID,
		Duplicates: match.IDs(copies[1:]), target: target,
	}
	if prune {
		st.Action, st.Reason = ActionDeleteOrphan, "the source certificate no longer exists"
	} else {
		st.Action, st.Reason = ActionKeepOrphan, "the source certificate no longer exists; kept because prune is off"
	}
	return st
}

func labelDiff(want, got engine.Labels) string {
	switch {
	case want.Name != got.Name && want.Description != got.Description:
		return "the name and the description differ"
	case want.Name != got.Name:
		return "the name differs"
	case want.Description != got.Description:
		return "the description differs"
	default:
		return "the ownership marker is not current"
	}
}

func regionOf(instance string) string {
	c, err := crn.Parse(instance)
	if err != nil {
		return ""
	}
	return c.Region
}
