package config

// kind is what a key holds.
type kind int

const (
	kSection  kind = iota // a map with known keys
	kString               // a scalar string
	kBool                 // true/false
	kInt                  // an integer
	kDuration             // a Go duration ("168h", "10s")
	kStrings              // a list of strings (a single string is accepted as a list of one)
	kMap                  // a map of anything (log.fields)
	kHeaders              // a map of header name to a list of strings
	kOpaque               // anything: a section registryd accepts but does not implement
)

// key describes one key of the schema.
type key struct {
	kind     kind
	children map[string]*key
	// implemented is false for keys distribution knows but registryd does
	// not act on yet: they are accepted and named in a startup warning.
	implemented bool
	// enum lists the accepted values of a string key, if limited.
	enum []string
	// secret values are masked when the configuration is printed.
	secret bool
}

func section(implemented bool, children map[string]*key) *key {
	return &key{kind: kSection, children: children, implemented: implemented}
}

func leaf(k kind) *key          { return &key{kind: k, implemented: true} }
func todo(k kind) *key          { return &key{kind: k} }
func enum(v ...string) *key     { return &key{kind: kString, implemented: true, enum: v} }
func secretLeaf(k kind) *key    { return &key{kind: k, implemented: true, secret: true} }
func opaque() *key              { return &key{kind: kOpaque} }
func opaqueSecret() *key        { return &key{kind: kOpaque, secret: true} }
func todoEnum(v ...string) *key { return &key{kind: kString, enum: v} }

// storageDrivers are the driver sections distribution knows; exactly one
// driver section selects the storage. Their parameters are driver-specific
// (distribution passes them through), so unknown drivers' contents are opaque.
var storageDrivers = map[string]bool{
	"filesystem": true, "inmemory": true,
	"s3": false, "azure": false, "gcs": false, "swift": false, "oss": false,
}

// schema is distribution's configuration reference as a tree: every key it
// documents is accepted, so an operator's existing config.yml starts.
func schema() *key {
	return section(true, map[string]*key{
		"version": leaf(kString),
		"log": section(true, map[string]*key{
			"level":        enum("error", "warn", "info", "debug"),
			"formatter":    enum("text", "json", "logstash"),
			"fields":       leaf(kMap),
			"hooks":        opaque(),
			"accesslog":    section(false, map[string]*key{"disabled": todo(kBool)}),
			"reportcaller": todo(kBool),
		}),
		"loglevel": todoEnum("error", "warn", "info", "debug"),
		"storage": section(true, map[string]*key{
			"filesystem": section(true, map[string]*key{
				"rootdirectory": leaf(kString),
				"maxthreads":    todo(kInt),
			}),
			"inmemory": opaque(),
			"s3":       opaqueSecret(),
			"azure":    opaqueSecret(),
			"gcs":      opaqueSecret(),
			"swift":    opaqueSecret(),
			"oss":      opaqueSecret(),
			"delete":   section(true, map[string]*key{"enabled": leaf(kBool)}),
			"redirect": section(true, map[string]*key{"disable": leaf(kBool)}),
			"cache":    opaque(),
			"tag":      opaque(),
			"maintenance": section(true, map[string]*key{
				"uploadpurging": section(true, map[string]*key{
					"enabled":  leaf(kBool),
					"age":      leaf(kDuration),
					"interval": leaf(kDuration),
					"dryrun":   leaf(kBool),
				}),
				"readonly": section(true, map[string]*key{"enabled": leaf(kBool)}),
			}),
		}),
		"auth":       opaqueSecret(),
		"middleware": opaque(),
		"reporting":  opaqueSecret(),
		"http": section(true, map[string]*key{
			"addr":         leaf(kString),
			"net":          enum("tcp", "unix"),
			"host":         leaf(kString),
			"prefix":       todo(kString),
			"secret":       secretLeaf(kString),
			"relativeurls": leaf(kBool),
			"draintimeout": leaf(kDuration),
			"headers":      leaf(kHeaders),
			"tls": section(true, map[string]*key{
				"certificate":  leaf(kString),
				"key":          leaf(kString),
				"clientcas":    todo(kStrings),
				"clientauth":   todo(kString),
				"minimumtls":   enum("tls1.2", "tls1.3"),
				"ciphersuites": todo(kStrings),
				"letsencrypt":  opaque(),
			}),
			"debug": section(true, map[string]*key{
				"addr": leaf(kString),
				"prometheus": section(true, map[string]*key{
					"enabled": leaf(kBool),
					"path":    leaf(kString),
				}),
				"tls": opaque(),
			}),
			"http2": opaque(),
			"h2c":   opaque(),
		}),
		"notifications": opaqueSecret(),
		"redis":         opaqueSecret(),
		"health": section(true, map[string]*key{
			"storagedriver": section(true, map[string]*key{
				"enabled":   leaf(kBool),
				"interval":  leaf(kDuration),
				"threshold": leaf(kInt),
			}),
			"file": opaque(),
			"http": opaque(),
			"tcp":  opaque(),
		}),
		"proxy":         opaqueSecret(),
		"compatibility": opaque(),
		"validation":    opaque(),
		"catalog":       section(true, map[string]*key{"maxentries": leaf(kInt)}),
	})
}
