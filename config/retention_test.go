package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const retentionYAML = minimal + `  maintenance:
    retention:
      dryrun: true
      delay: 12h
      maxdeletionsperrun: 50
      maxshare: 0.25
      interval: 1h
      policies:
        - repositories: ["team-a/**", "ci/*"]
          deleteuntagged: true
          keeptags:
            - patterns: ["^v[0-9]", "^latest$"]
            - mostrecentlypushedcount: 5
            - mostrecentlypulledcount: 4
            - pushedwithin: 720h
            - pulledwithin: 168h
            - patterns: ["^env18-"]
              mostrecentlypushedcount: 1
        - repositories: ["**"]
`

func TestRetention(t *testing.T) {
	c := mustParse(t, retentionYAML)
	want := Retention{
		DryRun: true, Delay: 12 * time.Hour, MaxDeletionsPerRun: 50, MaxShare: 0.25, Interval: time.Hour,
		Policies: []RetentionPolicy{
			{Repositories: []string{"team-a/**", "ci/*"}, DeleteUntagged: true, KeepTags: []KeepTags{
				{Patterns: []string{"^v[0-9]", "^latest$"}},
				{MostRecentlyPushedCount: 5},
				{MostRecentlyPulledCount: 4},
				{PushedWithin: 720 * time.Hour},
				{PulledWithin: 168 * time.Hour},
				{Patterns: []string{"^env18-"}, MostRecentlyPushedCount: 1},
			}},
			{Repositories: []string{"**"}},
		},
	}
	if got := c.Storage.Maintenance.Retention; !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %v", c.Warnings)
	}

	// Defaults: no policies, the guards.
	d := mustParse(t, minimal).Storage.Maintenance.Retention
	if !reflect.DeepEqual(d, Retention{Delay: 24 * time.Hour, MaxDeletionsPerRun: 1000, MaxShare: 0.5, Interval: 24 * time.Hour}) {
		t.Errorf("defaults: %+v", d)
	}

	// The dump shows every key and parses back to the same configuration.
	out, err := c.Dump()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"retention:", "maxshare: 0.25", "mostrecentlypushedcount: 1", "pulledwithin: 168h", "deleteuntagged: true"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("dump lacks %q:\n%s", s, out)
		}
	}
	back, err := Parse(out, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !reflect.DeepEqual(back.Storage.Maintenance.Retention, c.Storage.Maintenance.Retention) {
		t.Errorf("round trip:\n%+v\nwant\n%+v", back.Storage.Maintenance.Retention, c.Storage.Maintenance.Retention)
	}
	// Redacted is a deep copy.
	r := c.Redacted()
	r.Storage.Maintenance.Retention.Policies[0].KeepTags[0].Patterns[0] = "changed"
	if c.Storage.Maintenance.Retention.Policies[0].KeepTags[0].Patterns[0] != "^v[0-9]" {
		t.Error("Redacted shares the policies")
	}
}

func TestRetentionEnv(t *testing.T) {
	c := mustParse(t, retentionYAML,
		"REGISTRY_STORAGE_MAINTENANCE_RETENTION_MAXSHARE=0.75",
		"REGISTRY_STORAGE_MAINTENANCE_RETENTION_DRYRUN=false",
		"REGISTRY_STORAGE_MAINTENANCE_RETENTION_POLICIES_0_KEEPTAGS_1_MOSTRECENTLYPUSHEDCOUNT=9",
		"REGISTRY_STORAGE_MAINTENANCE_RETENTION_POLICIES_1_REPOSITORIES_0=other/**",
		"REGISTRY_STORAGE_MAINTENANCE_RETENTION_POLICIES_2={repositories: [x], keeptags: [{patterns: [a]}]}",
	)
	r := c.Storage.Maintenance.Retention
	if r.MaxShare != 0.75 || r.DryRun || r.Policies[0].KeepTags[1].MostRecentlyPushedCount != 9 ||
		r.Policies[1].Repositories[0] != "other/**" || len(r.Policies) != 3 || r.Policies[2].KeepTags[0].Patterns[0] != "a" {
		t.Errorf("%+v", r)
	}
	// A whole section from the environment alone.
	c = mustParse(t, "storage: inmemory\n", "REGISTRY_STORAGE_MAINTENANCE_RETENTION_POLICIES=[{repositories: ['**'], keeptags: [{mostrecentlypushedcount: 3}]}]")
	if p := c.Storage.Maintenance.Retention.Policies; len(p) != 1 || p[0].KeepTags[0].MostRecentlyPushedCount != 3 {
		t.Errorf("%+v", p)
	}
	// A bad value from the environment names the variable.
	_, err := Parse([]byte(retentionYAML), []string{"REGISTRY_STORAGE_MAINTENANCE_RETENTION_MAXSHARE=2"})
	var e *Error
	if !errors.As(err, &e) || e.EnvVar != "REGISTRY_STORAGE_MAINTENANCE_RETENTION_MAXSHARE" || !strings.Contains(err.Error(), "at most 1") {
		t.Errorf("%v", err)
	}
}

func TestRetentionErrors(t *testing.T) {
	head := minimal + "  maintenance:\n    retention:\n" // the retention keys start at line 7
	cases := []struct {
		name, yml, key string
		line           int
		want           string
	}{
		{"maxshare zero", head + "      maxshare: 0\n", "storage.maintenance.retention.maxshare", 7, "more than 0 and at most 1"},
		{"maxshare above one", head + "      maxshare: 1.5\n", "storage.maintenance.retention.maxshare", 7, "at most 1"},
		{"maxshare text", head + "      maxshare: half\n", "storage.maintenance.retention.maxshare", 7, "must be a number"},
		{"maxdeletions zero", head + "      maxdeletionsperrun: 0\n", "storage.maintenance.retention.maxdeletionsperrun", 7, "at least 1"},
		{"negative delay", head + "      delay: -1h\n", "storage.maintenance.retention.delay", 7, "must not be negative"},
		{"delay without unit", head + "      delay: 24\n", "storage.maintenance.retention.delay", 7, "with a unit"},
		{"policy without repositories", head + "      policies:\n        - deleteuntagged: true\n", "storage.maintenance.retention.policies[0]", 8, "needs repositories"},
		{"bad glob", head + "      policies:\n        - repositories: [ok/**, Team/*]\n", "storage.maintenance.retention.policies[0].repositories[1]", 8, `character 'T'`},
		{"bad glob star", head + "      policies:\n        - repositories:\n            - team**\n", "storage.maintenance.retention.policies[0].repositories[0]", 9, "whole path component"},
		{"bad regex", head + "      policies:\n        - repositories: [a]\n          keeptags:\n            - patterns: [\"^v[0-9\"]\n", "storage.maintenance.retention.policies[0].keeptags[0].patterns[0]", 10, "is not a regular expression"},
		{"negative count", head + "      policies:\n        - repositories: [a]\n          keeptags:\n            - mostrecentlypushedcount: -5\n", "storage.maintenance.retention.policies[0].keeptags[0].mostrecentlypushedcount", 10, "must not be negative"},
		{"negative pulled count", head + "      policies:\n        - repositories: [a]\n          keeptags:\n            - mostrecentlypulledcount: -1\n", "storage.maintenance.retention.policies[0].keeptags[0].mostrecentlypulledcount", 10, "must not be negative"},
		{"negative within", head + "      policies:\n        - repositories: [a]\n          keeptags:\n            - pushedwithin: -24h\n", "storage.maintenance.retention.policies[0].keeptags[0].pushedwithin", 10, "must not be negative"},
		{"empty rule", head + "      policies:\n        - repositories: [a]\n          keeptags:\n            - mostrecentlypushedcount: 0\n", "storage.maintenance.retention.policies[0].keeptags[0]", 10, "keeps nothing"},
		{"misspelt key", head + "      policies:\n        - repositories: [a]\n          keeptags:\n            - mostrecentlypushed: 3\n", "storage.maintenance.retention.policies[0].keeptags[0].mostrecentlypushed", 10, `did you mean "storage.maintenance.retention.policies[0].keeptags[0].mostrecentlypushedcount"`},
		{"camel case as zot writes it", head + "      policies:\n        - repositories: [a]\n          keepTags:\n            - patterns: [x]\n", "storage.maintenance.retention.policies[0].keepTags", 9, `did you mean "storage.maintenance.retention.policies[0].keeptags"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yml), nil)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%T is not an *Error", err)
			}
			if e.Key != tc.key || e.Line != tc.line {
				t.Errorf("Error{Key: %q, Line: %d}, want %q, %d (%v)", e.Key, e.Line, tc.key, tc.line, err)
			}
		})
	}
}

func TestRetentionShadowedPolicyWarns(t *testing.T) {
	c := mustParse(t, minimal+"  maintenance:\n    retention:\n      policies:\n        - repositories: ['**']\n        - repositories: [team/*]\n")
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "policies[1] never applies") {
		t.Errorf("warnings: %v", c.Warnings)
	}
}

// The example file's commented policy parses, as written.
func TestRetentionExample(t *testing.T) {
	example := exampleFile(t)
	_, block, ok := strings.Cut(example, "      policies: []")
	if !ok {
		t.Fatal("no retention policies in the example")
	}
	var yml strings.Builder
	yml.WriteString(minimal + "  maintenance:\n    retention:\n      policies:\n")
	for _, line := range strings.Split(block, "\n")[2:] {
		if !strings.HasPrefix(line, "#") {
			break
		}
		if strings.HasPrefix(line, "#       ##") {
			continue
		}
		yml.WriteString(" " + line[1:] + "\n")
	}
	c := mustParse(t, yml.String())
	p := c.Storage.Maintenance.Retention.Policies
	if len(p) != 1 || len(p[0].KeepTags) != 6 || !p[0].DeleteUntagged || p[0].KeepTags[5].MostRecentlyPushedCount != 3 {
		t.Errorf("%s\n%+v", yml.String(), p)
	}
}
