package auth

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParseBasic(t *testing.T) {
	tests := []struct {
		name     string
		header   string
		user, pw string
		wantErr  bool
	}{
		{"plain", "Basic " + b64("alice:secret"), "alice", "secret", false},
		{"scheme case-insensitive", "bAsIc " + b64("alice:secret"), "alice", "secret", false},
		{"extra spaces", "  Basic    " + b64("alice:secret") + "  ", "alice", "secret", false},
		{"tab separator", "Basic\t" + b64("alice:secret"), "alice", "secret", false},
		{"colon in password", "Basic " + b64("alice:a:b:c"), "alice", "a:b:c", false},
		{"empty password", "Basic " + b64("alice:"), "alice", "", false},
		{"unpadded base64", "Basic " + base64.RawStdEncoding.EncodeToString([]byte("alice:x")), "alice", "x", false},
		{"utf-8 password", "Basic " + b64("bob:pässwörd"), "bob", "pässwörd", false},
		{"no colon", "Basic " + b64("alice"), "", "", true},
		{"empty user", "Basic " + b64(":secret"), "", "", true},
		{"bad base64", "Basic !!!notbase64", "", "", true},
		{"url-safe base64 refused", "Basic " + base64.URLEncoding.EncodeToString([]byte("a?>:~~~")), "", "", true},
		{"no credentials", "Basic", "", "", true},
		{"no credentials trailing space", "Basic ", "", "", true},
		{"two tokens", "Basic " + b64("a:b") + " " + b64("c:d"), "", "", true},
		{"bearer", "Bearer abc.def.ghi", "", "", true},
		{"other scheme", "Digest username=x", "", "", true},
		{"control char in user", "Basic " + b64("al\x00ice:x"), "", "", true},
		{"newline in user", "Basic " + b64("al\nice:x"), "", "", true},
		{"oversized", "Basic " + b64("alice:"+strings.Repeat("x", maxAuthorizationBasic)), "", "", true},
		{"empty", "", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, p, err := parseBasic(tt.header)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseBasic(%.60q) error = %v, want error %v", tt.header, err, tt.wantErr)
			}
			if u != tt.user || p != tt.pw {
				t.Errorf("parseBasic = %q, %q; want %q, %q", u, p, tt.user, tt.pw)
			}
		})
	}
}

func TestAuthorizationHeader(t *testing.T) {
	tests := []struct {
		name string
		vals []string
		want error
	}{
		{"none", nil, errNoCredentials},
		{"blank", []string{"  "}, errNoCredentials},
		{"one", []string{"Basic x"}, nil},
		{"two", []string{"Basic x", "Basic y"}, errMultipleHeaders},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.vals {
				h.Add("Authorization", v)
			}
			if _, err := authorizationHeader(h); err != tt.want {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseBearer(t *testing.T) {
	tests := []struct {
		header, want string
		wantErr      error
	}{
		{"Bearer a.b.c", "a.b.c", nil},
		{"bearer   a.b.c ", "a.b.c", nil},
		{"Basic " + b64("a:b"), "", errNotBearer},
		{"Bearer", "", errMalformedBearer},
		{"Bearer a b", "", errMalformedBearer},
		{"Bearer " + strings.Repeat("a", maxAuthorizationBearer), "", errOversizedHeader},
	}
	for _, tt := range tests {
		got, err := parseBearer(tt.header)
		if err != tt.wantErr || got != tt.want {
			t.Errorf("parseBearer(%.40q) = %q, %v; want %q, %v", tt.header, got, err, tt.want, tt.wantErr)
		}
	}
}

// FuzzParseBasic checks that no header value makes parseBasic panic, that
// whatever it accepts is well formed, and that it accepts every credential
// a client could encode (a round trip). Seeds are in testdata/fuzz.
func FuzzParseBasic(f *testing.F) {
	f.Add("Basic " + b64("alice:secret"))
	f.Add("Basic " + b64("alice"))
	f.Add("Basic =")
	f.Add("basic\t" + b64("a:b:c"))
	f.Fuzz(func(t *testing.T, header string) {
		user, pw, err := parseBasic(header)
		if err != nil {
			if user != "" || pw != "" {
				t.Fatalf("error %v with credentials returned", err)
			}
			return
		}
		if user == "" || strings.Contains(user, ":") {
			t.Fatalf("accepted user %q", user)
		}
		if len(header) > maxAuthorizationBasic {
			t.Fatalf("accepted a %d-byte header", len(header))
		}
		// Re-encoding what was parsed must parse to the same.
		u2, p2, err := parseBasic("Basic " + b64(user+":"+pw))
		if err != nil || u2 != user || p2 != pw {
			t.Fatalf("round trip of %q:%q gave %q:%q, %v", user, pw, u2, p2, err)
		}
	})
}
