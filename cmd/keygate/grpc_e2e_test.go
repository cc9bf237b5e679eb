package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/keygate/keygate/internal/daemontest"
)

// TestGRPCExtAuthz runs the real binary with --grpc-addr: Envoy-shaped
// CheckRequests are decided as /v1/authz decides them (route scopes from
// the config file, the client address from attributes.source), the usage
// log records them, grpc.health.v1 answers SERVING, and SIGTERM stops the gRPC listener with the others
// (exit status 0, the records flushed).
func TestGRPCExtAuthz(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "keygate.json")
	if err := os.WriteFile(cfg, []byte(`{"routes":[{"prefix":"/orders","scope":"orders:read"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	grpcAddr := daemontest.FreeAddr(t)
	d := startKeygate(t, filepath.Join(dir, "data"), nil, "--config", cfg, "--grpc-addr", grpcAddr)
	if !strings.Contains(d.Output(), "grpc://"+grpcAddr) {
		t.Errorf("banner does not name the gRPC listener:\n%s", d.Output())
	}
	r := call(t, "POST", d.admin+"/v1/keys", d.token, map[string]any{"name": "svc", "scopes": []string{"orders:read"},
		"allowlist": []map[string]string{{"cidr": "203.0.113.0/24"}}})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var k struct{ ID, Secret string }
	if err := json.Unmarshal(r.body, &k); err != nil {
		t.Fatal(err)
	}

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := authv3.NewAuthorizationClient(conn)
	check := func(ip, path, key string) *authv3.CheckResponse {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := c.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
				SocketAddress: &corev3.SocketAddress{Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 41000}}}}},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Id: "1", Method: "GET", Path: path, Host: "api.example", Scheme: "http", Protocol: "HTTP/1.1",
				Headers: map[string]string{":method": "GET", ":path": path, ":authority": "api.example", "authorization": "Bearer " + key},
			}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := check("203.0.113.4", "/orders/1?x=2", k.Secret); resp.GetStatus().GetCode() != int32(codes.OK) ||
		resp.GetOkResponse().GetHeaders()[0].GetHeader().GetValue() != k.ID {
		t.Errorf("allowed: %v", resp)
	}
	if resp := check("198.51.100.1", "/orders/1", k.Secret); resp.GetStatus().GetCode() != int32(codes.PermissionDenied) ||
		resp.GetDeniedResponse().GetStatus().GetCode() != 403 {
		t.Errorf("ip not allowed: %v", resp)
	}
	if resp := check("203.0.113.4", "/orders/1", "kg_wrong"); resp.GetStatus().GetCode() != int32(codes.Unauthenticated) ||
		resp.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Errorf("invalid key: %v", resp)
	}

	hr, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("grpc.health.v1 Check: %v %v, want SERVING", hr, err)
	}

	if err := d.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, d.Output())
	}
	// The records were flushed at shutdown: a restart serves them.
	tok := d.token
	d = startKeygate(t, filepath.Join(dir, "data"), nil)
	r = call(t, "GET", d.admin+"/v1/logs?limit=10", tok, nil)
	var page struct {
		Items []struct {
			Path, IP string
			Status   int
		}
	}
	if err := json.Unmarshal(r.body, &page); err != nil || len(page.Items) != 3 {
		t.Fatalf("logs: %v %s", err, r.body)
	}
	got := []any{page.Items[0].Status, page.Items[1].Status, page.Items[2].Status, page.Items[2].Path, page.Items[2].IP}
	want := []any{401, 403, 200, "/orders/1", "203.0.113.4"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("logs: got %v, want %v", got, want)
			break
		}
	}
}

// TestGRPCShutdownDelay: on SIGTERM with --shutdown-delay, grpc.health.v1
// answers NOT_SERVING at once (as /readyz answers 503) while checks are
// still decided, so Envoy's health check takes the daemon out before its
// gRPC listener closes.
func TestGRPCShutdownDelay(t *testing.T) {
	dir := t.TempDir()
	grpcAddr := daemontest.FreeAddr(t)
	d := startKeygate(t, filepath.Join(dir, "data"), nil, "--grpc-addr", grpcAddr, "--shutdown-delay", "3s")
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	status := func() healthpb.HealthCheckResponse_ServingStatus {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatalf("health: %v", err)
		}
		return r.GetStatus()
	}
	if got := status(); got != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v before the signal", got)
	}
	d.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(2 * time.Second)
	for status() != healthpb.HealthCheckResponse_NOT_SERVING {
		if time.Now().After(deadline) {
			t.Fatal("health still SERVING 2 s after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := authv3.NewAuthorizationClient(conn).Check(context.Background(), &authv3.CheckRequest{})
	if err != nil || resp.GetStatus().GetCode() != int32(codes.Unauthenticated) {
		t.Errorf("a check during the delay: %v %v, want a decision (UNAUTHENTICATED)", resp, err)
	}
	if err := d.exit(t); err != nil {
		t.Errorf("exit: %v\n%s", err, d.Output())
	}
}

// TestGRPCUnixSocket: --grpc-addr takes unix:PATH like --addr: the socket
// has mode 0660, answers grpc.health.v1 and a Check, and is gone after a
// clean stop.
func TestGRPCUnixSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "grpc.sock")
	d := startKeygate(t, filepath.Join(dir, "data"), nil, "--grpc-addr", "unix:"+sock)
	if !strings.Contains(d.Output(), "envoy ext_authz: unix:"+sock) {
		t.Errorf("banner does not name the gRPC socket:\n%s", d.Output())
	}
	if fi, err := os.Lstat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("grpc socket: %v %v, want a socket of mode 0660", fi, err)
	}
	conn, err := grpc.NewClient("unix:"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health over the socket: %v %v", h, err)
	}
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/", Headers: map[string]string{":method": "GET", ":path": "/", "authorization": "Bearer kg_wrong"},
		}},
	}})
	if err != nil || resp.GetStatus().GetCode() != int32(codes.Unauthenticated) {
		t.Fatalf("check over the socket: %v %v, want UNAUTHENTICATED", resp, err)
	}
	conn.Close()
	if err := d.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("stop: %v\n%s", err, d.Output())
	}
	if _, err := os.Lstat(sock); err == nil {
		t.Errorf("%s still exists after a clean stop", sock)
	}
}
