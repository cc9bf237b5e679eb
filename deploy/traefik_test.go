package deploy_test

import (
	"os"
	"regexp"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestTraefikForwardAuth holds keygate.yml (not run: Debian ships no
// Traefik) to what deploy/README.md says of it: the forwardAuth
// middleware deletes every spelling of the identity headers, copies
// keygate's, and bounds keygate's answer.
func TestTraefikForwardAuth(t *testing.T) {
	b, err := os.ReadFile("traefik/keygate.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		HTTP struct {
			Middlewares map[string]struct {
				ForwardAuth struct {
					Address                  string   `yaml:"address"`
					TrustForwardHeader       bool     `yaml:"trustForwardHeader"`
					AuthResponseHeaders      []string `yaml:"authResponseHeaders"`
					AuthResponseHeadersRegex string   `yaml:"authResponseHeadersRegex"`
					MaxResponseBodySize      int64    `yaml:"maxResponseBodySize"`
				} `yaml:"forwardAuth"`
			} `yaml:"middlewares"`
		} `yaml:"http"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	fa := cfg.HTTP.Middlewares["keygate"].ForwardAuth
	if fa.Address == "" || len(fa.AuthResponseHeaders) != 3 || fa.MaxResponseBodySize != 64<<10 {
		t.Errorf("forwardAuth: %+v", fa)
	}
	re, err := regexp.Compile(fa.AuthResponseHeadersRegex) // Traefik uses Go's regexp
	if err != nil {
		t.Fatalf("authResponseHeadersRegex: %v", err)
	}
	for _, h := range []string{"X-Keygate-Key-Id", "X_Keygate_Key_Id", "x_keygate-key-name", "X-KEYGATE_SCOPES", "x-keygate-error-code"} {
		if !re.MatchString(h) {
			t.Errorf("authResponseHeadersRegex %q does not match %s", fa.AuthResponseHeadersRegex, h)
		}
	}
	for _, h := range []string{"X-Keygatex", "Authorization", "X-Forwarded-Keygate-Id"} {
		if re.MatchString(h) {
			t.Errorf("authResponseHeadersRegex %q matches %s", fa.AuthResponseHeadersRegex, h)
		}
	}
}
