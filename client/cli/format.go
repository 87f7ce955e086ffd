package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/tabwriter"
	"text/template"
	"text/template/parse"
	"time"
	"unicode"
)

// formatFlag is --format: "" (the command's default), "json", "table"
// (the default table), "table TEMPLATE" or a Go template.
type formatFlag struct{ value string }

func (f *formatFlag) define(fs *flag.FlagSet) {
	fs.StringVar(&f.value, "format", "", "output `format`: json, a Go template ('{{.Digest}}'), or 'table' + template for aligned columns with headers")
}

// output is a parsed --format.
type output struct {
	json  bool
	table bool
	tmpl  *template.Template // nil: the command's default
}

func (f formatFlag) parse() (*output, error) {
	v := f.value
	switch strings.TrimSpace(v) {
	case "":
		return &output{}, nil
	case "json":
		return &output{json: true}, nil
	case "table":
		return &output{table: true}, nil
	}
	o := &output{}
	if rest, ok := strings.CutPrefix(v, "table "); ok {
		o.table, v = true, rest
	}
	t, err := newTemplate(v)
	if err != nil {
		return nil, usagef("--format: %v", err)
	}
	o.tmpl = t
	return o, nil
}

func newTemplate(text string) (*template.Template, error) {
	// "\t" typed in a shell arrives as two characters: make it a tab, as
	// docker does.
	text = strings.ReplaceAll(text, `\t`, "\t")
	text = strings.ReplaceAll(text, `\n`, "\n")
	return template.New("format").Funcs(templateFuncs).Option("missingkey=zero").Parse(text)
}

// templateFuncs are the functions --format templates may call.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"join":  strings.Join,
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
	"size":  humanSize,
	"time":  formatTime,
	"short": shortDigest,
}

// list writes rows (a slice) the way the format says: JSON lines, a
// template per row, or a table (the command's default template when the
// format gave none). headers, when given, head the default table's
// columns in place of the names derived from its fields (a column
// computed by a method reads better under the name of what it shows).
func (o *output) list(w io.Writer, defaultTable string, rows any, headers ...string) error {
	rv := reflect.ValueOf(rows)
	if o.json {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for i := 0; i < rv.Len(); i++ {
			if err := enc.Encode(rv.Index(i).Interface()); err != nil {
				return err
			}
		}
		return nil
	}
	t, table := o.tmpl, o.table
	head := ""
	if t == nil {
		var err error
		if t, err = newTemplate(strings.TrimPrefix(defaultTable, "table ")); err != nil {
			return err
		}
		table = true
		head = strings.Join(headers, "\t")
	}
	out := w
	var tw *tabwriter.Writer
	if table {
		tw = tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
		out = tw
		if head == "" {
			head = header(t)
		}
		if strings.TrimSpace(head) != "" {
			fmt.Fprintln(out, head)
		}
	}
	for i := 0; i < rv.Len(); i++ {
		var b bytes.Buffer
		if err := t.Execute(&b, rv.Index(i).Interface()); err != nil {
			return fmt.Errorf("--format: %v", err)
		}
		fmt.Fprintln(out, strings.TrimRight(b.String(), "\n"))
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

// one writes a single object: indented JSON, the template, or the
// command's own text.
func (o *output) one(w io.Writer, v any, text func(io.Writer) error) error {
	switch {
	case o.json:
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case o.tmpl != nil:
		var b bytes.Buffer
		if err := o.tmpl.Execute(&b, v); err != nil {
			return fmt.Errorf("--format: %v", err)
		}
		_, err := fmt.Fprintln(w, strings.TrimRight(b.String(), "\n"))
		return err
	}
	return text(w)
}

// header is a table's heading, from the template itself as docker does:
// each action's last field name (.LastPushed, size .Unique), in capitals
// with spaces between words; literal text (the tabs) kept.
func header(t *template.Template) string {
	var b strings.Builder
	for _, n := range t.Tree.Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			b.WriteString(strings.ReplaceAll(string(n.Text), "\n", " "))
		case *parse.ActionNode:
			b.WriteString(headerName(lastField(n.Pipe)))
		}
	}
	return b.String()
}

func lastField(p *parse.PipeNode) string {
	name := ""
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.FieldNode:
			name = n.Ident[len(n.Ident)-1]
		case *parse.ChainNode:
			if len(n.Field) > 0 {
				name = n.Field[len(n.Field)-1]
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.PipeNode:
			for _, c := range n.Cmds {
				walk(c)
			}
		}
	}
	if p != nil {
		walk(p)
	}
	return name
}

// headerName turns LastPushed into LAST PUSHED.
func headerName(field string) string {
	var b strings.Builder
	rs := []rune(field)
	for i, r := range rs {
		// A word starts at a capital after a lower-case letter, or at the
		// last capital of an acronym before a lower-case letter (URLList),
		// but a plural acronym stays one word (URLs).
		plural := i+2 == len(rs) && rs[i+1] == 's'
		if i > 0 && unicode.IsUpper(r) && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]) && !plural)) {
			b.WriteByte(' ')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// humanSize writes bytes as docker does (SI units, three significant
// digits): 1.23kB, 45.6MB. Negative sizes are unknown: "-".
func humanSize(v any) string {
	var n float64
	switch x := v.(type) {
	case int64:
		n = float64(x)
	case int:
		n = float64(x)
	case *int64:
		if x == nil {
			return "-"
		}
		n = float64(*x)
	default:
		return fmt.Sprint(v)
	}
	if n < 0 {
		return "-"
	}
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	i := 0
	for n >= 1000 && i < len(units)-1 {
		n /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%dB", int64(n))
	}
	return fmt.Sprintf("%.3g%s", n, units[i])
}

// formatTime writes a time in UTC, RFC 3339; unknown times are "-".
func formatTime(v any) string {
	switch t := v.(type) {
	case time.Time:
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	case *time.Time:
		if t == nil || t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	return fmt.Sprint(v)
}

// shortDigest is a digest's first 12 hex digits, as docker shows image IDs.
func shortDigest(v any) string {
	s := fmt.Sprint(v)
	if _, hex, ok := strings.Cut(s, ":"); ok && len(hex) > 12 {
		return hex[:12]
	}
	return s
}
