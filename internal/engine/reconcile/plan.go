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

func plan(ctx context.Context, source engine.Source, targets []engine.Target, opts Options) (*PlanResult, error) {
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
			ix := match.NewIndex(l.certs)
			indexes[i] = &ix
		}
		p.Backups = append(p.Backups, bl)
	}

	for _, s := range sources {
		for i, t := range targets {
			if indexes[i] == nil {
				continue
			}
			p.Steps = append(p.Steps, stepFor(s, i, t, indexes[i].Lookup(s.ID, s.Name)))
		}
	}
	for i, t := range targets {
		if indexes[i] == nil {
			continue
		}
		for _, src := range slices.Sorted(maps.Keys(indexes[i].BySource)) {
			// Only copies of this source instance can be orphans of it: a backup may also
			// hold copies of other sources, and those are none of this run's business.
			if present[src] || !crn.CertificateBelongsTo(src, srcInstance) {
				continue
			}
			p.Steps = append(p.Steps, orphanStep(src, i, t.Instance(), indexes[i].BySource[src], opts.Prune))
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

func stepFor(s engine.Certificate, target int, t engine.Target, f match.Found) Step {
	st := Step{
		SourceCRN: s.ID, Name: s.Name, Backup: t.Instance(),
		Conflicts: match.IDs(f.Conflicts), Duplicates: match.IDs(f.Extra),
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
	case s.State == engine.Expired && (f.Copy == nil || !engine.SameCertificate(s, *f.Copy)):
		// The provider refuses to hand out (and to take in) an expired certificate:
		// trying would fail on every run and hide real failures.
		st.Action, st.Reason = ActionSkip, "the source certificate has expired; the service does not let it be downloaded or imported"
	case s.State == engine.Inactive:
		st.Action, st.Reason = ActionSkip, fmt.Sprintf("the source certificate is not active (%s)", s.StateReason)
	case f.Copy == nil:
		st.Action, st.Reason = ActionImport, "no copy in the backup"
	case !engine.SameCertificate(s, *f.Copy):
		st.Action, st.Reason = ActionReimport, "the copy holds another certificate ("+engine.CertificateDiff(s, *f.Copy)+")"
	case !match.SameLabels(t, s, *f.Copy):
		st.Action, st.Reason = ActionUpdate, labelDiff(t.Fit(match.Want(s)), engine.LabelsOf(*f.Copy))
	case len(f.Extra) > 0:
		st.Action, st.Reason = ActionRemoveDuplicates, fmt.Sprintf("%d further copies of the same source", len(f.Extra))
	default:
		st.Action = ActionNone
	}
	return st
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
	case want.Name != got.Name && (want.Description != got.Description || want.Marker != got.Marker):
		return "the name and the description differ"
	case want.Name != got.Name:
		return "the name differs"
	default:
		return "the description differs"
	}
}

func regionOf(instance string) string {
	c, err := crn.Parse(instance)
	if err != nil {
		return ""
	}
	return c.Region
}
