package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/schemas"
)

// metersFile is the parsed content of a meters file: the meters of each
// organization, in file order.
type metersFile map[string][]schemas.Meter

// LoadMetersFile applies the meters of a JSON file shaped
//
//	{"<org_id>": [meter, ...], ...}
//
// with meterstore.Store.Put: a meter whose definition is unchanged keeps
// its revision, and so the usage already metered for it; a changed one
// starts a new revision. Meters not in the file are left alone. The whole
// file is validated before anything is written, and every error names the
// organization, the meter's index and the field.
func LoadMetersFile(ctx context.Context, store *meterstore.Store, path string) error {
	file, err := readMetersFile(path)
	if err != nil {
		return err
	}
	return file.apply(ctx, store)
}

// readMetersFile parses and validates a meters file.
func readMetersFile(path string) (metersFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("meters file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	var byOrg map[string][]json.RawMessage
	if err := dec.Decode(&byOrg); err != nil {
		return nil, fmt.Errorf(`meters file %s: must be a JSON object {"<org_id>": [meter, ...]}: %w`, path, err)
	}
	var errs []error
	out := metersFile{}
	for _, org := range slices.Sorted(maps.Keys(byOrg)) {
		if !httpapi.OrgIDPattern.MatchString(org) {
			errs = append(errs, fmt.Errorf("meters file %s: organization %q must match %s", path, org, httpapi.OrgIDPattern))
			continue
		}
		seen := map[string]int{}
		for i, raw := range byOrg[org] {
			m, err := schemas.ParseMeter(raw)
			if err != nil {
				for _, d := range fieldErrors(err) {
					errs = append(errs, fmt.Errorf("meters file %s: organization %q, meter [%d]: %s: %s", path, org, i, d.Field, d.Message))
				}
				continue
			}
			if first, dup := seen[m.Key]; dup {
				errs = append(errs, fmt.Errorf("meters file %s: organization %q, meter [%d]: key: %q is already defined by meter [%d]", path, org, i, m.Key, first))
				continue
			}
			seen[m.Key] = i
			out[org] = append(out[org], m)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// putter is the part of the meter store that applying a file needs.
type putter interface {
	Put(ctx context.Context, orgID string, m schemas.Meter) (schemas.Meter, bool, error)
}

// apply puts every meter of the file, organization by organization.
func (f metersFile) apply(ctx context.Context, store putter) error {
	for _, org := range slices.Sorted(maps.Keys(f)) {
		for _, m := range f[org] {
			if _, _, err := store.Put(ctx, org, m); err != nil {
				return fmt.Errorf("apply meter %s of organization %s: %w", m.Key, org, err)
			}
		}
	}
	return nil
}
