package service

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/sagasuite/sagasuite/libs/outbox"
)

// OutboxAdminHandler serves a service's outbox admin API (sagactl outbox):
//
//	GET  /admin/outbox?state=parked|pending&limit=N   rows, oldest first (default parked, 100; at most 1000)
//	POST /admin/outbox/retry?id=ID                    un-park one row
//	POST /admin/outbox/retry?all=true                 un-park every parked row
//
// It lives on the ops port, which is not exposed outside the cluster.
func OutboxAdminHandler(service string, admin outbox.Admin) http.Handler {
	mux := http.NewServeMux()
	registerOutboxAdmin(mux, service, admin)
	return mux
}

func registerOutboxAdmin(mux *http.ServeMux, service string, admin outbox.Admin) {
	mux.HandleFunc("GET "+outbox.AdminListPath, func(w http.ResponseWriter, r *http.Request) {
		state := r.URL.Query().Get("state")
		if state == "" {
			state = "parked"
		}
		if state != "parked" && state != "pending" {
			writeJSONError(w, http.StatusBadRequest, `state must be "parked" or "pending", got `+strconv.Quote(state))
			return
		}
		limit := 100
		if s := r.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 1000 {
				writeJSONError(w, http.StatusBadRequest, "limit must be a number from 1 to 1000, got "+strconv.Quote(s))
				return
			}
			limit = n
		}
		rows, err := admin.ListOutbox(r.Context(), state == "parked", limit)
		if err != nil {
			writeJSONError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, outbox.AdminList{Service: service, State: state, Relay: admin.RelayStatus(), Rows: rows})
	})
	mux.HandleFunc("POST "+outbox.AdminRetryPath, func(w http.ResponseWriter, r *http.Request) {
		id, all := r.URL.Query().Get("id"), r.URL.Query().Get("all") == "true"
		if (id == "") == !all {
			writeJSONError(w, http.StatusBadRequest, "give either id=ID or all=true")
			return
		}
		n, err := admin.RetryParked(r.Context(), id)
		switch {
		case errors.Is(err, outbox.ErrBadID):
			writeJSONError(w, http.StatusBadRequest, err.Error())
		case errors.Is(err, outbox.ErrNotParked):
			writeJSONError(w, http.StatusNotFound, err.Error())
		case err != nil:
			writeJSONError(w, http.StatusServiceUnavailable, err.Error())
		default:
			writeJSON(w, http.StatusOK, outbox.AdminRetried{Service: service, Retried: n})
		}
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
