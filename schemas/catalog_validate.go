package schemas

import (
	"errors"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // time zones must not depend on the host's zoneinfo
	"unicode"
	"unicode/utf8"
)

// Limits on catalog fields, part of the API contract like the event limits.
const (
	MaxCatalogNameLen    = 256 // names of customers, plans, subscriptions; invoice display names
	MaxEmailLen          = 320
	MaxPlanDescLen       = 4096
	MaxSubscriptionIDLen = 256
	MaxMetadataKeys      = 50
	MaxMetadataKeyLen    = 64
	MaxMetadataValueLen  = 1024
	MaxPlanCharges       = 100
	MaxChargeTiers       = 100
)

// Plan codes and charge ids appear in URLs and on invoices.
var (
	PlanCodePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	ChargeIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// Validate checks a customer built in Go; ParseCustomer calls it. Every
// problem is reported, each naming its JSON field.
func (c *Customer) Validate() error { return errors.Join(c.validate()...) }

func (c *Customer) validate() []error {
	var errs []error
	errs = appendErr(errs, checkExternalID(c.ExternalID, "external_id", MaxCustomerIDLen))
	errs = appendErr(errs, checkText(c.Name, "name", MaxCatalogNameLen))
	errs = appendErr(errs, checkText(c.Email, "email", MaxEmailLen))
	if c.Email != "" {
		local, domain, _ := strings.Cut(c.Email, "@")
		if local == "" || domain == "" || strings.Contains(domain, "@") || strings.ContainsFunc(c.Email, unicode.IsSpace) {
			errs = append(errs, fieldErr("email", "must be one address with one '@', such as billing@example.com"))
		}
	}
	if c.Currency != "" && !ValidCurrency(c.Currency) {
		errs = append(errs, currencyErr("currency", c.Currency))
	}
	errs = appendErr(errs, checkTimezone(c.Timezone, "timezone"))
	return append(errs, checkMetadata(c.Metadata, "metadata")...)
}

// Validate checks a subscription built in Go; ParseSubscription calls it.
// A zero SubscriptionAt and an empty Timezone are valid: the caller
// defaults them (to now, and to the customer's zone).
func (s *Subscription) Validate() error { return errors.Join(s.validate()...) }

func (s *Subscription) validate() []error {
	var errs []error
	errs = appendErr(errs, checkExternalID(s.ExternalID, "external_id", MaxSubscriptionIDLen))
	errs = appendErr(errs, checkExternalID(s.ExternalCustomerID, "external_customer_id", MaxCustomerIDLen))
	if s.PlanCode == "" {
		errs = append(errs, fieldErr("plan_code", "is required"))
	} else if !PlanCodePattern.MatchString(s.PlanCode) {
		errs = append(errs, fieldErr("plan_code", "%q must match %s", s.PlanCode, PlanCodePattern))
	}
	errs = appendErr(errs, checkText(s.Name, "name", MaxCatalogNameLen))
	if s.EndingAt != nil && !s.SubscriptionAt.IsZero() && !s.EndingAt.After(s.SubscriptionAt) {
		errs = append(errs, fieldErr("ending_at", "%s is not after subscription_at %s",
			s.EndingAt.Format(time.RFC3339Nano), s.SubscriptionAt.Format(time.RFC3339Nano)))
	}
	if !slices.Contains(BillingTimes, s.BillingTime) {
		errs = append(errs, fieldErr("billing_time", "%q must be one of %v", s.BillingTime, BillingTimes))
	}
	return appendErr(errs, checkTimezone(s.Timezone, "timezone"))
}

// appendErr appends err unless it is nil; a nil *FieldError must not
// become a non-nil error.
func appendErr(errs []error, err *FieldError) []error {
	if err == nil {
		return errs
	}
	return append(errs, err)
}

// checkExternalID checks an id given by the client: it names the entity in
// URLs and events, so it is required, valid UTF-8 and printable.
func checkExternalID(id, field string, maxLen int) *FieldError {
	if id == "" {
		return fieldErr(field, "is required")
	}
	if err := checkText(id, field, maxLen); err != nil {
		return err
	}
	if strings.ContainsFunc(id, unicode.IsControl) {
		return fieldErr(field, "must not contain control characters")
	}
	if id == "." || id == ".." {
		// Ids are path segments of the API (/customers/{external_id}),
		// and HTTP clients and routers resolve these two away.
		return fieldErr(field, "%q cannot be an id: it is not a path segment of its own in a URL", id)
	}
	return nil
}

// checkText checks an optional string against a length in characters.
func checkText(s, field string, maxLen int) *FieldError {
	if !utf8.ValidString(s) {
		return fieldErr(field, "must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > maxLen {
		return fieldErr(field, "is %d characters long, at most %d allowed", n, maxLen)
	}
	return nil
}

func currencyErr(field, code string) *FieldError {
	return fieldErr(field, "%q is not an ISO 4217 currency code with a minor unit (upper case, such as USD or EUR)", code)
}

// checkTimezone checks an optional IANA zone name. "Local" would be the
// server's zone, which differs between machines.
func checkTimezone(tz, field string) *FieldError {
	if tz == "" {
		return nil
	}
	if tz == "Local" {
		return fieldErr(field, "must name an IANA time zone such as Europe/Paris; Local is the server's zone")
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return fieldErr(field, "%q is not an IANA time zone such as Europe/Paris or UTC", tz)
	}
	return nil
}

func checkMetadata(metadata map[string]string, field string) []error {
	var errs []error
	if len(metadata) > MaxMetadataKeys {
		errs = append(errs, fieldErr(field, "has %d keys, at most %d allowed", len(metadata), MaxMetadataKeys))
	}
	for _, key := range slices.Sorted(maps.Keys(metadata)) {
		path := field + "." + key
		if key == "" {
			errs = append(errs, fieldErr(field, "has an empty key"))
			continue
		}
		errs = appendErr(errs, checkText(key, path, MaxMetadataKeyLen))
		errs = appendErr(errs, checkText(metadata[key], path, MaxMetadataValueLen))
	}
	return errs
}

// mergeErrors joins parse errors with validation errors, leaving out the
// validation errors of a field (or its parts) that could not be parsed:
// a malformed amount must not also be reported as missing.
func mergeErrors(parsed, validated []error) error {
	var broken []string
	for _, err := range parsed {
		if fe, ok := errors.AsType[*FieldError](err); ok {
			broken = append(broken, fe.Field)
		}
	}
	errs := parsed
	for _, err := range validated {
		fe, ok := errors.AsType[*FieldError](err)
		if ok && slices.ContainsFunc(broken, func(b string) bool {
			return fe.Field == b || strings.HasPrefix(fe.Field, b+".") || strings.HasPrefix(fe.Field, b+"[")
		}) {
			continue
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
