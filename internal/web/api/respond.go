package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// apiError is the body of every error response:
// {"error":{"code":"...","message":"...","field":"..."}}.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// Extra carries details such as the ID of the open unlock request that
	// made a second one conflict.
	Extra map[string]any `json:"details,omitempty"`
}

func (e *apiError) Error() string { return e.Message }

func badRequest(field, format string, a ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: "invalid_request", Message: fmt.Sprintf(format, a...), Field: field}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Status, map[string]*apiError{"error": e})
}

// maxBody bounds request bodies; no API call needs more.
const maxBody = 1 << 20

// decodeJSON reads one JSON object into v, refusing unknown fields, wrong
// types, trailing data and oversized bodies with an error naming the field.
func decodeJSON(r *http.Request, v any) *apiError {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return &apiError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "the body must be application/json"}
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody+1))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.More() {
			return badRequest("", "the body must hold exactly one JSON object")
		}
		return nil
	}
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		return badRequest("", "the body is empty; a JSON object is required")
	case errors.As(err, &te):
		return badRequest(te.Field, "%s must be %s, not %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
	case errors.As(err, &se):
		return badRequest("", "malformed JSON at byte %d", se.Offset)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badRequest(f, "unknown field %q", f)
	}
	// Errors from UnmarshalText (addresses, prefixes, times) name the value.
	return badRequest("", "%s", strings.TrimPrefix(err.Error(), "json: "))
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "int", "int64", "int32", "uint", "uint64", "uint32", "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return k
}
