package registry

import "fmt"

// Deleting follows Confluent's two steps. A soft delete hides versions
// (from listings, lookups, "latest" and compatibility checks) but keeps
// them, so their ids still resolve for consumers of old records and a
// version number is never handed out twice. A permanent delete, allowed
// only on what was soft-deleted, drops them (the whole subject's: its own
// compatibility level too); their ids then resolve no more, unless another
// subject uses them, and are never given to another schema.

func errVersionNotFound(n int) *apiError {
	return &apiError{status: 404, Code: 40402, Message: fmt.Sprintf("Version %d not found.", n)}
}

// checkDelete says which versions a delete removes (version 0: the whole
// subject; -1: its latest live version) or why it is refused, with
// Confluent's codes. The caller holds mu or writeMu.
func (r *Registry) checkDelete(subject string, version int, permanent bool) ([]int, *apiError) {
	s := r.subjects[subject]
	if s == nil || len(s.versions) == 0 {
		return nil, errSubjectNotFound(subject)
	}
	live := s.live()
	if version == 0 {
		switch {
		case !permanent && len(live) == 0:
			return nil, &apiError{status: 404, Code: 40404, Message: fmt.Sprintf("Subject '%s' was soft deleted. Set permanent=true to delete permanently", subject)}
		case permanent && len(live) > 0:
			return nil, &apiError{status: 404, Code: 40405, Message: fmt.Sprintf("Subject '%s' was not deleted first before being permanently deleted", subject)}
		}
		var out []int
		for _, v := range s.versions {
			if v.deleted == permanent {
				out = append(out, v.version)
			}
		}
		return out, nil
	}
	v := s.find(version, true)
	if version == -1 {
		v = s.find(-1, false)
	}
	switch {
	case v == nil:
		return nil, errVersionNotFound(version)
	case !permanent && v.deleted:
		return nil, &apiError{status: 404, Code: 40406, Message: fmt.Sprintf("Subject '%s' Version %d was soft deleted. Set permanent=true to delete permanently", subject, v.version)}
	case permanent && !v.deleted:
		return nil, &apiError{status: 404, Code: 40407, Message: fmt.Sprintf("Subject '%s' Version %d was not deleted first before being permanently deleted", subject, v.version)}
	}
	return []int{v.version}, nil
}

// applyDelete applies a durable, checked delete of versions (0: every
// version) to memory. The caller holds writeMu (or is replaying).
func (r *Registry) applyDelete(subject string, version int, permanent bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.subjects[subject]
	if !permanent {
		for _, v := range s.versions {
			if version == 0 || v.version == version {
				v.deleted = true
			}
		}
		return
	}
	kept := s.versions[:0]
	for _, v := range s.versions {
		if version != 0 && v.version != version {
			kept = append(kept, v)
		}
	}
	s.versions = kept
	if version == 0 {
		delete(r.subjects, subject)
	}
}

// deleteVersions deletes a subject's version (-1: its latest live one) or,
// for version 0, all of it, and returns the version numbers deleted.
func (r *Registry) deleteVersions(subject string, version int, permanent bool) ([]int, *apiError) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	deleted, e := r.checkDelete(subject, version, permanent)
	if e != nil {
		return nil, e
	}
	if version != 0 {
		version = deleted[0] // "latest" is logged as the number it was
	}
	rec := record{Op: opDelete, Subject: subject, Version: version, Permanent: permanent, At: now()}
	if err := r.appendLocked(rec); err != nil {
		return nil, errStore("deleting", err)
	}
	r.applyDelete(subject, version, permanent)
	return deleted, nil
}
