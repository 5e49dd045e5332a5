package api

import (
	"context"
	"net/http"

	"padlock/internal/lock"
)

// byID serves GET .../{id}: the object with that ID, or the service's error.
func byID[T any](get func(context.Context, lock.Actor, int64) (T, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
		id, err := pathID(r, "id")
		if err != nil {
			return err
		}
		v, err := get(r.Context(), actor, id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, v)
		return nil
	}
}

// listByID serves GET .../{id}/things: the list for that ID as {"items":[...]}.
func listByID[T any](get func(context.Context, lock.Actor, int64) ([]T, error)) handlerFunc {
	return byID(func(ctx context.Context, a lock.Actor, id int64) (map[string]any, error) {
		v, err := get(ctx, a, id)
		return list(v), err
	})
}

// onID serves POST .../{id}/action with a JSON body In (optional: an empty
// body is the zero In) and answers status with the call's result.
func onID[In, Out any](status int, optional bool, call func(context.Context, lock.Actor, int64, In) (Out, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
		id, err := pathID(r, "id")
		if err != nil {
			return err
		}
		var in In
		if !optional || r.ContentLength != 0 {
			if err := decodeJSON(r, &in); err != nil {
				return err
			}
		}
		out, err := call(r.Context(), actor, id, in)
		if err != nil {
			return err
		}
		writeJSON(w, status, out)
		return nil
	}
}

type noteIn struct {
	Note string `json:"note"`
}

type messageIn struct {
	Message string `json:"message"`
}
