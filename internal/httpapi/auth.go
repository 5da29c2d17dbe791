package httpapi

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
)

// OrgIDPattern restricts organization ids. They never contain '/', which
// the Kafka record key relies on.
var OrgIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// MinKeyLength keeps guessable keys out of configuration.
const MinKeyLength = 16

// Keys maps API keys to organizations. Keys are held as SHA-256 digests
// and compared in constant time.
type Keys struct {
	entries []keyEntry
}

type keyEntry struct {
	digest [sha256.Size]byte
	orgID  string
}

// Add registers key for orgID.
func (k *Keys) Add(orgID, key string) error {
	if !OrgIDPattern.MatchString(orgID) {
		return fmt.Errorf("organization id %q must match %s", orgID, OrgIDPattern)
	}
	if len(key) < MinKeyLength {
		return fmt.Errorf("API key of organization %q is shorter than %d characters", orgID, MinKeyLength)
	}
	digest := sha256.Sum256([]byte(key))
	for _, e := range k.entries {
		if e.digest == digest {
			return fmt.Errorf("API key of organization %q is already used by %q", orgID, e.orgID)
		}
	}
	k.entries = append(k.entries, keyEntry{digest: digest, orgID: orgID})
	return nil
}

// AddSpec adds keys from "org:key,org:key".
func (k *Keys) AddSpec(spec string) error {
	var errs []error
	for _, pair := range strings.Split(spec, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		org, key, ok := strings.Cut(pair, ":")
		if !ok {
			errs = append(errs, fmt.Errorf("API key entry %q must be org:key", redact(pair)))
			continue
		}
		errs = append(errs, k.Add(strings.TrimSpace(org), strings.TrimSpace(key)))
	}
	return errors.Join(errs...)
}

// AddFile adds keys from a file of "org key" lines; '#' starts a comment.
func (k *Keys) AddFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("API keys file: %w", err)
	}
	defer f.Close()
	var errs []error
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(text)
		switch len(fields) {
		case 0:
		case 2:
			if err := k.Add(fields[0], fields[1]); err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: %w", path, line, err))
			}
		default:
			errs = append(errs, fmt.Errorf("%s:%d: want \"<org> <key>\"", path, line))
		}
	}
	return errors.Join(append(errs, sc.Err())...)
}

// Len returns the number of keys.
func (k *Keys) Len() int { return len(k.entries) }

// Lookup returns the organization of key.
func (k *Keys) Lookup(key string) (orgID string, ok bool) {
	digest := sha256.Sum256([]byte(key))
	for _, e := range k.entries {
		// Compare every entry so the time taken does not depend on which matched.
		if subtle.ConstantTimeCompare(e.digest[:], digest[:]) == 1 {
			orgID, ok = e.orgID, true
		}
	}
	return orgID, ok
}

func redact(s string) string {
	if org, _, ok := strings.Cut(s, ":"); ok {
		return org + ":…"
	}
	if len(s) > 4 {
		return s[:4] + "…"
	}
	return s
}

type orgKey struct{}

// OrgID returns the organization a request was authenticated for.
func OrgID(ctx context.Context) string {
	org, _ := ctx.Value(orgKey{}).(string)
	return org
}

// WithOrgID returns ctx scoped to orgID (tests and internal callers).
func WithOrgID(ctx context.Context, orgID string) context.Context {
	return context.WithValue(ctx, orgKey{}, orgID)
}

// Authenticate accepts "Authorization: Bearer <key>" or "Authorization:
// <key>" (the PriceOps form) and scopes the request to the key's
// organization; anything else is 401. The organization comes only from
// the key: no header, query or body field can choose another one.
func Authenticate(keys *Keys, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header := strings.TrimSpace(r.Header.Get("Authorization"))
		if header == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tally"`)
			WriteError(w, http.StatusUnauthorized, CodeUnauthorized, "missing Authorization header: send \"Authorization: Bearer <API key>\"")
			return
		}
		key := header
		if scheme, rest, ok := strings.Cut(header, " "); ok && strings.EqualFold(scheme, "Bearer") {
			key = strings.TrimSpace(rest)
		}
		org, ok := keys.Lookup(key)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tally", error="invalid_token"`)
			WriteError(w, http.StatusUnauthorized, CodeUnauthorized, "unknown API key")
			return
		}
		next.ServeHTTP(w, r.WithContext(WithOrgID(r.Context(), org)))
	})
}
