package lago

import (
	"net/http"

	"github.com/tally-oss/tally/internal/httpapi"
)

// Error is Lago's error body: the HTTP status repeated, its reason
// phrase, a stable code, and per-field messages for validation errors
// ({"external_subscription_id": ["value_is_mandatory"]}).
type Error struct {
	Status       int                 `json:"status"`
	Error        string              `json:"error"`
	Code         string              `json:"code,omitempty"`
	ErrorDetails map[string][]string `json:"error_details,omitempty"`
}

// writeNotFound answers 404 with code "<resource>_not_found".
func writeNotFound(w http.ResponseWriter, resource string) {
	httpapi.WriteJSON(w, http.StatusNotFound, Error{Status: http.StatusNotFound, Error: "Not Found", Code: resource + "_not_found"})
}

// writeValidation answers 422 validation_errors with details by field.
func writeValidation(w http.ResponseWriter, details map[string][]string) {
	httpapi.WriteJSON(w, http.StatusUnprocessableEntity, Error{Status: http.StatusUnprocessableEntity,
		Error: "Unprocessable Entity", Code: "validation_errors", ErrorDetails: details})
}

func writeMethodNotAllowed(w http.ResponseWriter, code string) {
	httpapi.WriteJSON(w, http.StatusMethodNotAllowed, Error{Status: http.StatusMethodNotAllowed, Error: "Method Not Allowed", Code: code})
}

func writeError(w http.ResponseWriter, status int, code string) {
	httpapi.WriteJSON(w, status, Error{Status: status, Error: http.StatusText(status), Code: code})
}
