package httptool

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRouterMatch(t *testing.T) {
	r, err := newRouter([]Route{
		{Upstream: "p", Method: "DELETE", Path: "/v1/charges/{id}", Tool: "cancel"},
		{Upstream: "p", Method: "DELETE", Path: "/v1/charges/all", Tool: "cancel_all"},
		{Upstream: "p", Method: "POST", Path: "/v1/{kind}/{id}/capture", Tool: "capture"},
		{Upstream: "p", Method: "POST", Path: "/v1/charges/{id}/capture", Tool: "capture_charge"},
		{Upstream: "p", Method: "POST", Path: "/v1/{kind}/all/capture", Tool: "capture_all"},
		{Upstream: "p", Method: "POST", Path: "/", Tool: "root"},
		{Upstream: "q", Method: "DELETE", Path: "/v1/charges/{id}", Tool: "other"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, path string
		tool         string // "" for no match
		params       map[string]string
	}{
		{"DELETE", "/v1/charges/ch_1", "cancel", map[string]string{"id": "ch_1"}},
		{"DELETE", "/v1/charges/all", "cancel_all", map[string]string{}},
		{"DELETE", "/v1/charges/a%2Fb", "cancel", map[string]string{"id": "a%2Fb"}},
		{"DELETE", "/v1/charges/", "", nil},
		{"DELETE", "/v1/charges", "", nil},
		{"DELETE", "/v1/charges/ch_1/", "", nil},
		{"DELETE", "/v1/charges/..", "", nil},
		{"DELETE", "/v1/charges/.", "", nil},
		{"DELETE", "/v1/charges/%2e%2E", "", nil},
		{"DELETE", "/v1/charges/%2e", "", nil},
		{"DELETE", "/v1/charges/%zz", "", nil},
		{"DELETE", "/v1/charges/...", "cancel", map[string]string{"id": "..."}},
		{"DELETE", "/V1/charges/ch_1", "", nil},
		{"GET", "/v1/charges/ch_1", "", nil},
		{"POST", "/v1/charges/ch_1/capture", "capture_charge", map[string]string{"id": "ch_1"}},
		{"POST", "/v1/refunds/re_1/capture", "capture", map[string]string{"kind": "refunds", "id": "re_1"}},
		{"POST", "/v1/charges/all/capture", "capture_charge", map[string]string{"id": "all"}},
		{"POST", "/v1/refunds/all/capture", "capture_all", map[string]string{"kind": "refunds"}},
		{"POST", "/", "root", map[string]string{}},
	}
	for _, tt := range tests {
		route, params := r.match("p", tt.method, tt.path)
		tool := ""
		if route != nil {
			tool = route.Tool
		}
		if tool != tt.tool || !cmp.Equal(params, tt.params) {
			t.Errorf("match(p, %s %s) = %q %v, want %q %v", tt.method, tt.path, tool, params, tt.tool, tt.params)
		}
	}
}

func TestRouterRefusesBadPatterns(t *testing.T) {
	for _, path := range []string{"v1/x", "/v1/{id", "/v1/x{id}", "/v1/{}", "/v1/{a{b}}"} {
		if _, err := newRouter([]Route{{Upstream: "p", Method: "GET", Path: path, Tool: "t"}}); err == nil {
			t.Errorf("newRouter(%q) accepted it", path)
		}
	}
}
