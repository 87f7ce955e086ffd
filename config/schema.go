package config

import "strings"

// kind is what a key holds.
type kind int

const (
	kSection  kind = iota // a map with known keys
	kString               // a scalar, read as a string
	kBool                 // true/false (yes/no/on/off too, as distribution's YAML reads them)
	kInt                  // an integer
	kDuration             // a Go duration: "168h", "10s"
	kFloat                // a number: 0.5, 1
	kStrings              // a list of strings; a single string is a list of one
	kList                 // a list of sections (elem)
	kMap                  // a map of names to anything (log.fields, middleware options)
	kHeaders              // a map of header names to lists of strings
	kAny                  // anything: parameters distribution passes through unread
)

// key describes one key of the configuration.
type key struct {
	kind     kind
	children map[string]*key // kSection
	elem     *key            // kList
	// implemented: registryd acts on the key. A key that is not is
	// accepted, because distribution knows it, and named in a warning.
	implemented bool
	// open: keys not listed are accepted as kAny, because distribution
	// hands the section to code whose parameters vary with the version
	// (storage drivers other than filesystem, redis's client options).
	open bool
	// perChild: the warning for an unimplemented section names each child
	// present (auth.htpasswd, notifications.endpoints), not the section.
	perChild bool
	// driver: a storage driver section; exactly one must be present.
	driver bool
	// nameForm: a plain string names the one child to select, with no
	// parameters ("storage: inmemory", "auth: silly"), as distribution
	// accepts.
	nameForm bool
	enum     []string // accepted values of a string, if limited
	foldCase bool     // enum compared case-insensitively (log levels)
	// secret values are masked by Redacted/Dump. On kHeaders it masks every
	// header value (request headers sent to other services carry
	// credentials).
	secret bool
}

// Constructors. Keys are unimplemented unless wrapped in impl().

func section(children map[string]*key) *key { return &key{kind: kSection, children: children} }
func openSection(children map[string]*key) *key {
	return &key{kind: kSection, children: children, open: true}
}
func list(elem *key) *key         { return &key{kind: kList, elem: elem} }
func leaf(k kind) *key            { return &key{kind: k} }
func secret() *key                { return &key{kind: kString, secret: true} }
func oneOf(values ...string) *key { return &key{kind: kString, enum: values} }
func foldedOneOf(values ...string) *key {
	return &key{kind: kString, enum: values, foldCase: true}
}

// driverSection is a storage driver's parameters; open for the drivers
// registryd does not have, whose parameters vary with distribution's
// version (selecting one is an error anyway).
func driverSection(open bool, children map[string]*key) *key {
	return &key{kind: kSection, children: children, open: open, driver: true}
}

// impl marks k implemented: registryd acts on it.
func impl(k *key) *key { k.implemented = true; return k }

func str() *key      { return leaf(kString) }
func boolean() *key  { return leaf(kBool) }
func integer() *key  { return leaf(kInt) }
func duration() *key { return leaf(kDuration) }
func float() *key    { return leaf(kFloat) }
func strs() *key     { return leaf(kStrings) }

// supportedDrivers names the storage drivers registryd has, for messages.
const supportedDrivers = "filesystem, inmemory and s3"

// schema returns every key of distribution's configuration reference
// (https://distribution.github.io/distribution/about/configuration/, and the
// storage driver pages under storage-drivers/), including keys of earlier
// 2.x releases still found in operators' files (redis.pool, reporting,
// compatibility.schema1, the swift and oss drivers, storage.cache.layerinfo,
// policy). A new tree each call: there is no package state to share.
func schema() *key {
	logLevel := func() *key { return foldedOneOf("error", "warn", "info", "debug") }
	checkTiming := func(extra map[string]*key) *key {
		c := map[string]*key{"timeout": duration(), "interval": duration(), "threshold": integer()}
		for n, k := range extra {
			c[n] = k
		}
		return section(c)
	}
	middlewares := func() *key {
		return list(section(map[string]*key{
			"name":     str(),
			"disabled": boolean(),
			"options":  leaf(kMap),
		}))
	}
	requestHeaders := func() *key { return &key{kind: kHeaders, secret: true} }
	storage := impl(section(map[string]*key{
		// Drivers (storage-drivers/*.md). Only filesystem, inmemory and
		// s3 are implemented; selecting another is a startup error.
		"filesystem": impl(driverSection(false, map[string]*key{
			"rootdirectory": impl(str()),
			"maxthreads":    integer(),
		})),
		"inmemory": impl(driverSection(false, map[string]*key{})), // "This driver takes no parameters"
		"s3": impl(driverSection(true, map[string]*key{
			"accesskey": impl(str()), "secretkey": impl(secret()), "sessiontoken": impl(secret()),
			"region": impl(str()), "regionendpoint": impl(str()), "forcepathstyle": impl(boolean()),
			"accelerate": boolean(), "bucket": impl(str()), "encrypt": boolean(), "keyid": str(),
			"secure": impl(boolean()), "skipverify": impl(boolean()), "v4auth": boolean(),
			"chunksize": impl(leaf(kAny)), "multipartcopychunksize": impl(leaf(kAny)),
			"multipartcopymaxconcurrency": impl(leaf(kAny)), "multipartcopythresholdsize": impl(leaf(kAny)),
			"rootdirectory": impl(str()), "storageclass": impl(str()), "useragent": str(),
			"usedualstack": boolean(), "objectacl": str(), "loglevel": str(),
		})),
		"azure": driverSection(true, map[string]*key{
			"accountname": str(), "accountkey": secret(), "container": str(), "realm": str(),
			"rootdirectory": str(), "serviceurl": str(),
			"credentials": openSection(map[string]*key{
				"type": str(), "clientid": str(), "tenantid": str(), "secret": secret(),
			}),
			"max_retries": integer(), "retry_delay": leaf(kAny),
			"copy_status_poll_max_retry": integer(), "copy_status_poll_delay": leaf(kAny),
		}),
		"gcs": driverSection(true, map[string]*key{
			"bucket": str(), "keyfile": str(), "rootdirectory": str(),
			"chunksize": leaf(kAny), "disablekeepalives": boolean(),
			"credentials": openSection(map[string]*key{
				"type": str(), "project_id": str(), "private_key_id": secret(),
				"private_key": secret(), "client_email": str(), "client_id": str(),
				"auth_uri": str(), "token_uri": str(), "auth_provider_x509_cert_url": str(),
				"client_x509_cert_url": str(),
			}),
		}),
		"swift": driverSection(true, map[string]*key{
			"authurl": str(), "username": str(), "password": secret(), "region": str(),
			"container": str(), "tenant": str(), "tenantid": str(), "domain": str(),
			"domainid": str(), "trustid": str(), "insecureskipverify": boolean(),
			"chunksize": leaf(kAny), "prefix": str(), "rootdirectory": str(),
			"secretkey": secret(), "accesskey": str(), "authversion": leaf(kAny),
			"endpointtype": str(), "tempurlcontainerkey": boolean(), "tempurlmethods": strs(),
		}),
		"oss": driverSection(true, map[string]*key{
			"accesskeyid": str(), "accesskeysecret": secret(), "region": str(),
			"endpoint": str(), "internal": boolean(), "bucket": str(), "encrypt": boolean(),
			"encryptionkeyid": str(), "secure": boolean(), "chunksize": leaf(kAny),
			"rootdirectory": str(),
		}),
		// Not drivers.
		"delete":   impl(section(map[string]*key{"enabled": impl(boolean())})),
		"redirect": impl(section(map[string]*key{"disable": impl(boolean()), "enable": impl(boolean())})),
		"cache": section(map[string]*key{
			"blobdescriptor":     oneOf("redis", "inmemory"),
			"blobdescriptorsize": integer(),
			"layerinfo":          oneOf("redis", "inmemory"), // deprecated name of blobdescriptor
		}),
		"tag": section(map[string]*key{"concurrencylimit": integer()}),
		"maintenance": impl(section(map[string]*key{
			"uploadpurging": impl(section(map[string]*key{
				"enabled":  impl(boolean()),
				"age":      impl(duration()),
				"interval": impl(duration()),
				"dryrun":   impl(boolean()),
			})),
			"readonly": impl(section(map[string]*key{"enabled": impl(boolean())})),
			"scrub": impl(section(map[string]*key{ // registryd's own
				"enabled":   impl(boolean()),
				"interval":  impl(duration()),
				"ratelimit": impl(leaf(kAny)),
				"repair":    impl(boolean()),
			})),
			"retention": retentionSchema(), // retention.go
			"pulltimes": impl(section(map[string]*key{
				"enabled":  impl(boolean()),
				"interval": impl(duration()),
			})),
		})),
	}))
	storage.nameForm = true

	auth := authSchema() // auth.go

	notifications := impl(section(map[string]*key{
		"events": impl(section(map[string]*key{"includereferences": impl(boolean())})),
		"endpoints": impl(list(impl(section(map[string]*key{
			"name": impl(str()), "disabled": impl(boolean()), "url": impl(str()), "headers": impl(requestHeaders()),
			"timeout": impl(duration()), "threshold": impl(integer()), "backoff": impl(duration()),
			"ignoredmediatypes": impl(strs()),
			"ignore":            impl(section(map[string]*key{"mediatypes": impl(strs()), "actions": impl(strs())})),
		})))),
	}))

	return impl(section(map[string]*key{
		"version": impl(str()),
		"log": impl(section(map[string]*key{
			"level":     impl(logLevel()),
			"formatter": impl(oneOf("text", "json", "logstash")),
			"fields":    impl(leaf(kMap)),
			"accesslog": section(map[string]*key{"disabled": boolean()}),
			"hooks": list(section(map[string]*key{
				"type": str(), "disabled": boolean(), "levels": strs(),
				"options": section(map[string]*key{
					"smtp": section(map[string]*key{
						"addr": str(), "username": str(), "password": secret(), "insecure": boolean(),
					}),
					"from": str(),
					"to":   strs(),
				}),
			})),
			"reportcaller": boolean(),
		})),
		"loglevel":   logLevel(), // deprecated in distribution: "use log instead"
		"storage":    storage,
		"auth":       auth,
		"access":     accessSchema(), // registryd only; auth.go
		"ui":         uiSchema(),     // registryd only; ui.go
		"middleware": section(map[string]*key{"registry": middlewares(), "repository": middlewares(), "storage": middlewares()}),
		"reporting": section(map[string]*key{
			"bugsnag":  section(map[string]*key{"apikey": secret(), "releasestage": str(), "endpoint": str()}),
			"newrelic": section(map[string]*key{"licensekey": secret(), "name": str(), "verbose": boolean()}),
		}),
		"http": impl(section(map[string]*key{
			"addr":         impl(str()),
			"net":          impl(oneOf("tcp", "unix")),
			"host":         impl(str()),
			"prefix":       impl(str()),
			"secret":       impl(secret()),
			"relativeurls": impl(boolean()),
			"draintimeout": impl(duration()),
			"headers":      impl(leaf(kHeaders)),
			"tls": impl(section(map[string]*key{
				"certificate": impl(str()),
				"key":         impl(str()),
				"clientcas":   impl(strs()),
				"clientauth": oneOf("request-client-cert", "require-any-client-cert",
					"verify-client-cert-if-given", "require-and-verify-client-cert"),
				// distribution also accepts tls1.0 and tls1.1; registryd
				// does not serve them (checked in fill, with a clear message).
				"minimumtls":   impl(oneOf("tls1.0", "tls1.1", "tls1.2", "tls1.3")),
				"ciphersuites": strs(),
				"letsencrypt": section(map[string]*key{
					"cachefile": str(), "email": str(), "hosts": strs(), "directoryurl": str(),
				}),
			})),
			"debug": impl(section(map[string]*key{
				"addr": impl(str()),
				"prometheus": impl(section(map[string]*key{
					"enabled": impl(boolean()),
					"path":    impl(str()),
				})),
			})),
			"ratelimit": rateLimitSchema(), // ratelimit.go
			"http2":     section(map[string]*key{"disabled": boolean()}),
			"h2c":       section(map[string]*key{"enabled": boolean()}),
		})),
		"notifications": notifications,
		// redis inlines go-redis's client options, whose names change
		// with go-redis versions: the documented keys are listed, others
		// are accepted.
		"redis": openSection(map[string]*key{
			"addr": str(), "addrs": strs(), "username": str(), "password": secret(),
			"db": integer(), "dialtimeout": duration(), "readtimeout": duration(),
			"writetimeout": duration(), "maxidleconns": integer(), "poolsize": integer(),
			"connmaxidletime": duration(), "sentinelpassword": secret(),
			"pool": section(map[string]*key{"maxidle": integer(), "maxactive": integer(), "idletimeout": duration()}),
			"tls": section(map[string]*key{
				"enabled": boolean(), "certificate": str(), "key": str(), "clientcas": strs(),
			}),
		}),
		"health": impl(section(map[string]*key{
			"storagedriver": impl(section(map[string]*key{
				"enabled":   impl(boolean()),
				"interval":  impl(duration()),
				"threshold": impl(integer()),
			})),
			"file": list(section(map[string]*key{"file": str(), "interval": duration(), "threshold": integer()})),
			"http": list(checkTiming(map[string]*key{"uri": str(), "headers": requestHeaders(), "statuscode": integer()})),
			"tcp":  list(checkTiming(map[string]*key{"addr": str()})),
		})),
		"proxy": proxySchema(), // proxy.go
		"compatibility": section(map[string]*key{
			"schema1": section(map[string]*key{"signingkeyfile": str(), "enabled": boolean()}),
		}),
		"validation": section(map[string]*key{
			"enabled":  boolean(), // deprecated by distribution in favour of disabled
			"disabled": boolean(),
			"manifests": section(map[string]*key{
				"urls": section(map[string]*key{"allow": strs(), "deny": strs()}),
				"indexes": section(map[string]*key{
					"platforms":    foldedOneOf("all", "none", "list"),
					"platformlist": list(section(map[string]*key{"architecture": str(), "os": str()})),
				}),
			}),
		}),
		"policy": section(map[string]*key{
			"repository": section(map[string]*key{"classes": strs()}),
		}),
		"catalog": impl(section(map[string]*key{"maxentries": impl(integer())})),
	}))
}

// isSecretName tells whether a parameter is masked where the schema does
// not describe it (open sections, middleware options).
func isSecretName(name string) bool {
	switch strings.ToLower(name) {
	case "password", "secret", "secretkey", "accountkey", "accesskeysecret", "sessiontoken",
		"private_key", "privatekey", "apikey", "licensekey", "token", "clientsecret":
		return true
	}
	return false
}

// child returns k's key named name: listed, or accepted by an open section.
func (k *key) child(name string) (*key, bool) {
	if c, ok := k.children[name]; ok {
		return c, true
	}
	if k.open {
		return &key{kind: kAny, secret: isSecretName(name)}, true
	}
	return nil, false
}
