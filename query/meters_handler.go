package query

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/schemas"
)

// MeterStore is what the handlers need from the meter definitions;
// *meterstore.Store satisfies it. Its errors meterstore.ErrNotFound and
// meterstore.ErrExists become 404 and 409.
type MeterStore interface {
	Create(ctx context.Context, orgID string, m schemas.Meter) (schemas.Meter, error)
	Get(ctx context.Context, orgID, key string) (schemas.Meter, error)
	List(ctx context.Context, orgID string) ([]schemas.Meter, error)
	Delete(ctx context.Context, orgID, key string) error
}

var _ MeterStore = (*meterstore.Store)(nil)

// maxMeterBytes bounds a meter definition: a description of 4096
// characters and sixteen group keys fit many times over.
const maxMeterBytes = 1 << 20

// metersHandler serves the meters API of the authenticated organization.
type metersHandler struct {
	store  MeterStore
	plans  PlanLister // nil: meters are deleted whatever plans charge them (tests)
	logger *slog.Logger
}

// PlanLister lists the plans that may charge a meter; *catalogstore.Store
// satisfies it.
type PlanLister interface {
	ListPlans(ctx context.Context, orgID, after string, limit int) ([]schemas.Plan, error)
}

// listResponse is the body of GET /api/v1/meters.
type listResponse struct {
	Data []schemas.Meter `json:"data"`
}

func (h *metersHandler) create(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			httpapi.WriteError(w, http.StatusUnsupportedMediaType, httpapi.CodeUnsupportedMedia, "send the meter as Content-Type: application/json")
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxMeterBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			httpapi.WriteError(w, http.StatusRequestEntityTooLarge, httpapi.CodeTooLarge, "a meter definition must be at most 1 MiB")
			return
		}
		httpapi.WriteError(w, http.StatusBadRequest, httpapi.CodeBadRequest, "could not read the request body: "+err.Error())
		return
	}
	// The revision and creation time in a body are ignored: the store
	// assigns them.
	meter, err := schemas.ParseMeter(body)
	if err != nil {
		details := fieldErrors(err)
		httpapi.WriteErrorDetails(w, http.StatusBadRequest, httpapi.CodeValidation,
			"the meter definition is invalid: "+joinMessages(details), details)
		return
	}
	org := httpapi.OrgID(r.Context())
	created, err := h.store.Create(r.Context(), org, meter)
	switch {
	case errors.Is(err, meterstore.ErrExists):
		httpapi.WriteError(w, http.StatusConflict, httpapi.CodeConflict,
			"meter "+meter.Key+" already exists; delete it first to redefine it (its usage so far will no longer be served)")
		return
	case err != nil:
		h.storeFailed(w, r, "create meter", err)
		return
	}
	w.Header().Set("Location", MetersRoute+"/"+created.Key)
	httpapi.WriteJSON(w, http.StatusCreated, created)
}

func (h *metersHandler) list(w http.ResponseWriter, r *http.Request) {
	meters, err := h.store.List(r.Context(), httpapi.OrgID(r.Context()))
	if err != nil {
		h.storeFailed(w, r, "list meters", err)
		return
	}
	slices.SortFunc(meters, func(a, b schemas.Meter) int { return strings.Compare(a.Key, b.Key) })
	if meters == nil {
		meters = []schemas.Meter{} // "data": [], not null
	}
	httpapi.WriteJSON(w, http.StatusOK, listResponse{Data: meters})
}

func (h *metersHandler) get(w http.ResponseWriter, r *http.Request) {
	meter, ok := h.lookup(w, r)
	if ok {
		httpapi.WriteJSON(w, http.StatusOK, meter)
	}
}

func (h *metersHandler) delete(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	err := errNotFoundIfInvalid(key)
	if err == nil {
		var charging []string
		if charging, err = h.plansCharging(r.Context(), httpapi.OrgID(r.Context()), key); err == nil && len(charging) > 0 {
			// Its usage would no longer be served, and those charges would
			// silently price zero units.
			httpapi.WriteErrorDetails(w, http.StatusConflict, httpapi.CodeConflict, fmt.Sprintf(
				"meter %s is charged by plan %s; remove the charge from those plans (PUT %s/{code}) before deleting the meter",
				quoteKey(key), strings.Join(charging, ", "), PlansRoute), map[string]any{"plans": charging})
			return
		}
	}
	if err == nil {
		err = h.store.Delete(r.Context(), httpapi.OrgID(r.Context()), key)
	}
	switch {
	case errors.Is(err, meterstore.ErrNotFound):
		writeMeterNotFound(w, key)
	case err != nil:
		h.storeFailed(w, r, "delete meter", err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// lookup returns the live meter named by the path's {key}, or writes the
// error response.
func (h *metersHandler) lookup(w http.ResponseWriter, r *http.Request) (schemas.Meter, bool) {
	key := r.PathValue("key")
	err := errNotFoundIfInvalid(key)
	var meter schemas.Meter
	if err == nil {
		meter, err = h.store.Get(r.Context(), httpapi.OrgID(r.Context()), key)
	}
	switch {
	case errors.Is(err, meterstore.ErrNotFound):
		writeMeterNotFound(w, key)
		return schemas.Meter{}, false
	case err != nil:
		h.storeFailed(w, r, "get meter", err)
		return schemas.Meter{}, false
	}
	return meter, true
}

// errNotFoundIfInvalid answers a key that no meter can have without asking
// ClickHouse.
func errNotFoundIfInvalid(key string) error {
	if !schemas.MeterKeyPattern.MatchString(key) {
		return meterstore.ErrNotFound
	}
	return nil
}

func writeMeterNotFound(w http.ResponseWriter, key string) {
	httpapi.WriteError(w, http.StatusNotFound, httpapi.CodeNotFound,
		"meter "+quoteKey(key)+" not found; GET "+MetersRoute+" lists your meters")
}

// storeFailed answers a failure of the meter store: ClickHouse down or
// slow is 503 (retry later), anything else a 500. It is logged here, once.
func (h *metersHandler) storeFailed(w http.ResponseWriter, r *http.Request, action string, err error) {
	writeStorageError(w, r, h.logger, action, err)
}

// ignoreExpected hides the errors that are answers, not failures, from
// the ClickHouse error metric.
func ignoreExpected(err error) error {
	if errors.Is(err, meterstore.ErrNotFound) || errors.Is(err, meterstore.ErrExists) {
		return nil
	}
	return err
}

// plansCharging returns the codes of the plans that charge meter key, at
// most 10. It reads planBatch plans at a time: a plan may be about 1 MiB,
// so a page of 1000 could hold a gigabyte.
func (h *metersHandler) plansCharging(ctx context.Context, org, key string) ([]string, error) {
	if h.plans == nil {
		return nil, nil
	}
	var codes []string
	after := ""
	for {
		page, err := h.plans.ListPlans(ctx, org, after, planBatch)
		if err != nil {
			return nil, err
		}
		for _, p := range page {
			if slices.ContainsFunc(p.Charges, func(c schemas.Charge) bool { return c.Meter == key }) {
				if codes = append(codes, p.Code); len(codes) == 10 {
					return codes, nil
				}
			}
		}
		if len(page) < planBatch {
			return codes, nil
		}
		after = page[len(page)-1].Code
	}
}
