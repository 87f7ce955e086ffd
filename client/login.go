package client

import (
	"context"
	"fmt"

	dockerconfig "github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
)

// staticKeychain answers the same credentials for every registry: login's
// check of the credentials it is about to store.
type staticKeychain struct{ auth authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }

// credentialKey is where docker keeps a registry's credentials in its
// config: the host as typed, or Docker Hub's historical URL.
func credentialKey(host string) string {
	if isDockerHub(host) {
		return authn.DefaultAuthKey
	}
	return host
}

// Login checks user and password against host (a GET /v2/ through Basic or
// token auth, as docker login does) and stores them where docker does:
// docker's config.json under $DOCKER_CONFIG or ~/.docker, through its
// credsStore or credHelpers when configured (docker's own packages do the
// writing). It returns the file written.
func Login(ctx context.Context, opts Options, host, user, password string) (string, error) {
	opts.Keychain = staticKeychain{authn.FromConfig(authn.AuthConfig{Username: user, Password: password})}
	c, err := New(opts)
	if err != nil {
		return "", err
	}
	if err := c.Ping(ctx, host); err != nil {
		return "", fmt.Errorf("login to %s: %w", host, err)
	}
	cf, err := dockerconfig.Load(dockerconfig.Dir())
	if err != nil {
		return "", fmt.Errorf("docker config: %w", err)
	}
	key := credentialKey(host)
	if err := cf.GetCredentialsStore(key).Store(types.AuthConfig{Username: user, Password: password, ServerAddress: key}); err != nil {
		return "", fmt.Errorf("storing the credentials for %s: %w", host, err)
	}
	return cf.Filename, nil
}

// Logout removes host's credentials from docker's config (or its
// credential helper). It reports whether there were any.
func Logout(host string) (bool, string, error) {
	cf, err := dockerconfig.Load(dockerconfig.Dir())
	if err != nil {
		return false, "", fmt.Errorf("docker config: %w", err)
	}
	key := credentialKey(host)
	store := cf.GetCredentialsStore(key)
	got, err := store.Get(key)
	if err != nil {
		return false, cf.Filename, err
	}
	if got.Username == "" && got.Password == "" && got.IdentityToken == "" && got.RegistryToken == "" {
		return false, cf.Filename, nil
	}
	if err := store.Erase(key); err != nil {
		return false, cf.Filename, fmt.Errorf("removing the credentials for %s: %w", host, err)
	}
	return true, cf.Filename, nil
}
