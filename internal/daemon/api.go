package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// maxRequestBody bounds a control API request body.
const maxRequestBody = 64 << 10

// API routes.
const (
	RouteStatus      = "/v1/status"
	RouteDevices     = "/v1/devices"
	RouteTopology    = "/v1/topology"
	RouteTargets     = "/v1/targets"
	RouteTransitions = "/v1/transitions"
	RoutePolicy      = "/v1/policy"
	RoutePathFail    = "/v1/paths/fail"
	RoutePathRestore = "/v1/paths/reinstate"
	RouteReload      = "/v1/reload"
	RouteDiscovery   = "/v1/discovery"
	RouteRescan      = "/v1/discovery/rescan"
	RouteMetrics     = "/metrics"
)

// apiHandler serves the control API over m. With readOnly (the TCP
// metrics listener) only the GET routes exist.
func apiHandler(m Manager, readOnly bool) *http.ServeMux {
	mux := http.NewServeMux()
	get := func(route string, f func(r *http.Request) (any, error)) {
		mux.HandleFunc("GET "+route, func(w http.ResponseWriter, r *http.Request) {
			v, err := f(r)
			reply(w, v, err)
		})
	}
	get(RouteStatus, func(*http.Request) (any, error) { return m.Status(), nil })
	get(RouteDevices, func(*http.Request) (any, error) { return m.Devices(), nil })
	get(RouteTopology, func(r *http.Request) (any, error) { return m.Topology(r.URL.Query().Get("device")) })
	get(RouteTargets, func(*http.Request) (any, error) { return m.Targets(), nil })
	get(RouteDiscovery, func(*http.Request) (any, error) { return m.Discovery(), nil })
	get(RouteTransitions, func(r *http.Request) (any, error) {
		limit := 0
		if s := r.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: limit %q: want a non-negative integer", ErrBadRequest, s)
			}
			limit = n
		}
		return m.Transitions(limit), nil
	})
	get(RoutePolicy, func(r *http.Request) (any, error) {
		dev := r.URL.Query().Get("device")
		if dev == "" {
			return nil, fmt.Errorf("%w: the device parameter is required", ErrBadRequest)
		}
		return m.Policy(dev)
	})
	if readOnly {
		return mux
	}
	post := func(route string, f func(body []byte) (any, error)) {
		mux.HandleFunc("POST "+route, func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
			if err != nil {
				reply(w, nil, fmt.Errorf("%w: %w", ErrBadRequest, err))
				return
			}
			v, err := f(body)
			reply(w, v, err)
		})
	}
	post(RoutePolicy, func(body []byte) (any, error) {
		var req PolicyRequest
		if err := decodeBody(body, &req); err != nil {
			return nil, err
		}
		return m.SetPolicy(req)
	})
	post(RoutePathFail, func(body []byte) (any, error) {
		var req PathRequest
		if err := decodeBody(body, &req); err != nil {
			return nil, err
		}
		return m.FailPath(req.Path, req.Reason)
	})
	post(RoutePathRestore, func(body []byte) (any, error) {
		var req PathRequest
		if err := decodeBody(body, &req); err != nil {
			return nil, err
		}
		return m.ReinstatePath(req.Path)
	})
	post(RouteReload, func([]byte) (any, error) { return struct{}{}, m.Reload() })
	post(RouteRescan, func([]byte) (any, error) { return m.Rescan() })
	return mux
}

// decodeBody decodes a strict JSON request.
func decodeBody(body []byte, v any) error {
	dec := json.NewDecoder(bytesReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return nil
}

// reply writes v as JSON, or err as an error document whose code and HTTP
// status come from errorCodes.
func reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		status, code := http.StatusInternalServerError, "internal"
		for _, c := range errorCodes {
			if errors.Is(err, c.err) {
				status, code = c.status, c.code
				break
			}
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(errorBody{Error: err.Error(), Code: code})
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}

// controlHandler serves the unix socket: the whole API.
func (d *Daemon) controlHandler() http.Handler { return apiHandler(d, false) }

// metricsHandler serves the TCP listener: /metrics, the dashboard at / and
// the read-only API the dashboard polls.
func (d *Daemon) metricsHandler() http.Handler {
	mux := apiHandler(d, true)
	mux.Handle("GET "+RouteMetrics, metricsHTTP(d.reg))
	mux.HandleFunc("GET /{$}", d.serveDashboard)
	return mux
}
