package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// TestEnvoyBootstrap parses every deploy/envoy/*.yaml as an Envoy v3
// Bootstrap with go-control-plane, every typed_config resolved to its
// extension's message, and runs the generated validation on all of them,
// so a misspelt field or a value Envoy would refuse fails make test
// (Debian ships no Envoy to run). It also holds the files to the settings
// deploy/README.md promises.
func TestEnvoyBootstrap(t *testing.T) {
	files, err := filepath.Glob("envoy/*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("envoy/*.yaml: %v %v, want envoy.yaml, envoy-path-override.yaml and envoy-grpc.yaml", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			bs, err := parseBootstrap(b)
			if err != nil {
				t.Fatal(err)
			}
			checkEnvoySettings(t, bs)
		})
	}
	// The test would catch a typo: a misspelt field and a bad enum value.
	b, _ := os.ReadFile("envoy/envoy.yaml")
	for from, to := range map[string]string{
		"normalize_path:":  "normalise_path:",
		"REJECT_REQUEST\n": "REJECT\n",
		"allowed_headers:": "allowed_header:",
		"timeout: 0.25s":   "timeout: -1s",
		"cluster: keygate": "cluster: \"\"",
	} {
		if !strings.Contains(string(b), from) {
			t.Fatalf("envoy.yaml has no %q", from)
		}
		if _, err := parseBootstrap([]byte(strings.Replace(string(b), from, to, 1))); err == nil {
			t.Errorf("%q → %q: accepted", from, to)
		}
	}
}

// TestEnvoyGRPCTypos: the gRPC file's own fields are checked too.
func TestEnvoyGRPCTypos(t *testing.T) {
	b, err := os.ReadFile("envoy/envoy-grpc.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for from, to := range map[string]string{
		"transport_api_version: V3": "transport_api_version: V4",
		"cluster_name: keygate":     "cluster_name: \"\"",
		"grpc_service:":             "grpc_servic:",
	} {
		if !strings.Contains(string(b), from) {
			t.Fatalf("envoy-grpc.yaml has no %q", from)
		}
		if _, err := parseBootstrap([]byte(strings.Replace(string(b), from, to, 1))); err == nil {
			t.Errorf("%q → %q: accepted", from, to)
		}
	}
}

// parseBootstrap decodes an Envoy YAML bootstrap strictly and validates
// it, nested typed_config messages included.
func parseBootstrap(y []byte) (*bootstrapv3.Bootstrap, error) {
	var v any
	if err := yaml.Unmarshal(y, &v); err != nil {
		return nil, err
	}
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	bs := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(j, bs); err != nil {
		return nil, err
	}
	return bs, validateDeep(bs)
}

// validateDeep runs m's generated ValidateAll and that of every message
// packed in an Any below it.
func validateDeep(m proto.Message) error {
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			return err
		}
	}
	var err error
	walkAnys(m.ProtoReflect(), func(a *anypb.Any) {
		if err != nil {
			return
		}
		inner, e := a.UnmarshalNew()
		if e != nil {
			err = fmt.Errorf("%s: %w", a.GetTypeUrl(), e)
			return
		}
		if e := validateDeep(inner); e != nil {
			err = fmt.Errorf("%s: %w", a.GetTypeUrl(), e)
		}
	})
	return err
}

// walkAnys calls fn for every Any directly or indirectly in m (not inside
// another Any: validateDeep recurses into those).
func walkAnys(m protoreflect.Message, fn func(*anypb.Any)) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		fn(a)
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				walkAnys(v.List().Get(i).Message(), fn)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				walkAnys(mv.Message(), fn)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			walkAnys(v.Message(), fn)
		}
		return true
	})
}

// checkEnvoySettings asserts the edge settings of the one HTTP connection
// manager and its ext_authz filter.
func checkEnvoySettings(t *testing.T, bs *bootstrapv3.Bootstrap) {
	t.Helper()
	var hcm *hcmv3.HttpConnectionManager
	for _, l := range bs.GetStaticResources().GetListeners() {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				m, err := f.GetTypedConfig().UnmarshalNew()
				if err != nil {
					t.Fatal(err)
				}
				if h, ok := m.(*hcmv3.HttpConnectionManager); ok {
					hcm = h
				}
			}
		}
	}
	if hcm == nil {
		t.Fatal("no http_connection_manager")
	}
	if !hcm.GetNormalizePath().GetValue() || !hcm.GetMergeSlashes() ||
		hcm.GetPathWithEscapedSlashesAction() != hcmv3.HttpConnectionManager_REJECT_REQUEST ||
		hcm.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction().String() != "REJECT_REQUEST" ||
		!hcm.GetUseRemoteAddress().GetValue() {
		t.Errorf("http_connection_manager: normalize_path %v, merge_slashes %v, path_with_escaped_slashes_action %v, headers_with_underscores_action %v, use_remote_address %v",
			hcm.GetNormalizePath(), hcm.GetMergeSlashes(), hcm.GetPathWithEscapedSlashesAction(),
			hcm.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction(), hcm.GetUseRemoteAddress())
	}
	var authz *extauthzv3.ExtAuthz
	for _, f := range hcm.GetHttpFilters() {
		m, err := f.GetTypedConfig().UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		if a, ok := m.(*extauthzv3.ExtAuthz); ok {
			authz = a
		}
	}
	if authz == nil {
		t.Fatal("no ext_authz filter")
	}
	if authz.GetFailureModeAllow() {
		t.Error("ext_authz: failure_mode_allow must be false")
	}
	if authz.GetGrpcService() != nil {
		checkGRPCService(t, bs, authz)
		return
	}
	hs := authz.GetHttpService()
	if p, o := hs.GetPathPrefix(), hs.GetPathOverride(); !(p == "/v1/authz" && o == "" || p == "" && o == "/v1/authz") {
		t.Errorf("ext_authz: path_prefix %q, path_override %q: want one of them /v1/authz", p, o)
	}
	added := map[string]string{}
	for _, h := range hs.GetAuthorizationRequest().GetHeadersToAdd() {
		added[h.GetKey()] = h.GetValue()
	}
	if added["x-forwarded-uri"] != "%REQ(:PATH)%" || added["x-forwarded-method"] != "%REQ(:METHOD)%" || added["x-forwarded-for"] == "" {
		t.Errorf("ext_authz headers_to_add %v", added)
	}
}

// checkGRPCService asserts the gRPC mode of ext_authz: the v3 protocol,
// no request body, and an HTTP/2 cluster to keygate's --grpc-addr.
func checkGRPCService(t *testing.T, bs *bootstrapv3.Bootstrap, authz *extauthzv3.ExtAuthz) {
	t.Helper()
	if authz.GetTransportApiVersion().String() != "V3" || authz.GetWithRequestBody() != nil {
		t.Errorf("ext_authz: transport_api_version %v, with_request_body %v: want V3 and none", authz.GetTransportApiVersion(), authz.GetWithRequestBody())
	}
	name := authz.GetGrpcService().GetEnvoyGrpc().GetClusterName()
	for _, c := range bs.GetStaticResources().GetClusters() {
		if c.GetName() != name {
			continue
		}
		opts, ok := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
		if !ok {
			t.Fatalf("cluster %s: no HttpProtocolOptions (gRPC needs HTTP/2)", name)
		}
		m, err := opts.UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		if m.(*upstreamhttpv3.HttpProtocolOptions).GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
			t.Errorf("cluster %s: not HTTP/2", name)
		}
		return
	}
	t.Errorf("ext_authz grpc_service names cluster %q, which does not exist", name)
}
