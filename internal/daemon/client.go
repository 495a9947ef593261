package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
)

// clientBaseURL is the URL prefix of requests over the unix socket (the
// host part is ignored by the dialer).
const clientBaseURL = "http://srp-mpathd"

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// Client talks to a daemon's control socket. It is safe for concurrent use.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the control socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}
	return &Client{socket: path, hc: &http.Client{Transport: tr}}
}

// do sends one request; out receives the JSON answer. Errors: ErrNoDaemon
// (wrapped in an *OpError naming the socket) when the socket cannot be
// reached, an *APIError for an error answer.
func (c *Client) do(ctx context.Context, method, route string, q url.Values, in, out any) error {
	u := clientBaseURL + route
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return &OpError{Op: "connect to " + c.socket, Err: fmt.Errorf("%w: %w", ErrNoDaemon, err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return &OpError{Op: method + " " + route, Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		var eb errorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error == "" {
			eb.Error = fmt.Sprintf("control API %s %s: HTTP %d", method, route, resp.StatusCode)
		}
		return &APIError{Status: resp.StatusCode, Code: eb.Code, Message: eb.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &OpError{Op: "decode " + route, Err: err}
	}
	return nil
}

// maxResponseBody bounds an answer of the control API.
const maxResponseBody = 16 << 20

// Status calls GET /v1/status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, RouteStatus, nil, nil, &s)
}

// Devices calls GET /v1/devices.
func (c *Client) Devices(ctx context.Context) ([]DeviceView, error) {
	var v []DeviceView
	return v, c.do(ctx, http.MethodGet, RouteDevices, nil, nil, &v)
}

// Topology calls GET /v1/topology (device "" for all).
func (c *Client) Topology(ctx context.Context, device string) ([]TopologyView, error) {
	var v []TopologyView
	q := url.Values{}
	if device != "" {
		q.Set("device", device)
	}
	return v, c.do(ctx, http.MethodGet, RouteTopology, q, nil, &v)
}

// Discovery calls GET /v1/discovery.
func (c *Client) Discovery(ctx context.Context) (DiscoveryView, error) {
	var v DiscoveryView
	return v, c.do(ctx, http.MethodGet, RouteDiscovery, nil, nil, &v)
}

// Rescan calls POST /v1/discovery/rescan.
func (c *Client) Rescan(ctx context.Context) (RescanResult, error) {
	var v RescanResult
	return v, c.do(ctx, http.MethodPost, RouteRescan, nil, struct{}{}, &v)
}

// Targets calls GET /v1/targets.
func (c *Client) Targets(ctx context.Context) ([]TargetView, error) {
	var v []TargetView
	return v, c.do(ctx, http.MethodGet, RouteTargets, nil, nil, &v)
}

// Transitions calls GET /v1/transitions.
func (c *Client) Transitions(ctx context.Context, limit int) ([]TransitionView, error) {
	var v []TransitionView
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	return v, c.do(ctx, http.MethodGet, RouteTransitions, q, nil, &v)
}

// Policy calls GET /v1/policy.
func (c *Client) Policy(ctx context.Context, device string) (PolicyView, error) {
	var v PolicyView
	return v, c.do(ctx, http.MethodGet, RoutePolicy, url.Values{"device": {device}}, nil, &v)
}

// SetPolicy calls POST /v1/policy.
func (c *Client) SetPolicy(ctx context.Context, req PolicyRequest) (PolicyView, error) {
	var v PolicyView
	return v, c.do(ctx, http.MethodPost, RoutePolicy, nil, req, &v)
}

// FailPath calls POST /v1/paths/fail.
func (c *Client) FailPath(ctx context.Context, id, reason string) (PathResult, error) {
	var v PathResult
	return v, c.do(ctx, http.MethodPost, RoutePathFail, nil, PathRequest{Path: id, Reason: reason}, &v)
}

// ReinstatePath calls POST /v1/paths/reinstate.
func (c *Client) ReinstatePath(ctx context.Context, id string) (PathResult, error) {
	var v PathResult
	return v, c.do(ctx, http.MethodPost, RoutePathRestore, nil, PathRequest{Path: id}, &v)
}

// Reload calls POST /v1/reload.
func (c *Client) Reload(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, RouteReload, nil, struct{}{}, nil)
}
