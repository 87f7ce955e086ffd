package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
)

// readList reads a catalog or tags/list response and counts the strings
// in its field array ("repositories" or "tags"), without building them:
// encoding/json into a map of []any costs the client about a millisecond
// per 10,000 names, as much as a fast server takes to answer, and would
// hide the servers' differences behind the client's own work. The names
// are checked to be JSON strings; their count is what the walk verifies.
func readList(resp *http.Response, field string) (int, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	return countStrings(b, field)
}

// countStrings counts the elements of the array under key field of the
// JSON object in b, each of which must be a string. A missing key is an
// error; so is any element that is not a string.
func countStrings(b []byte, field string) (int, error) {
	key := []byte(`"` + field + `"`)
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, fmt.Errorf("no %q in response: %.80s", field, b)
	}
	i += len(key)
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return 0, fmt.Errorf("%q is not a key", field)
	}
	i = skipSpace(b, i+1)
	if i >= len(b) || b[i] != '[' {
		return 0, fmt.Errorf("%q is not an array", field)
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return 0, nil
	}
	n := 0
	for {
		if i >= len(b) || b[i] != '"' {
			return n, fmt.Errorf("element %d of %q is not a string", n, field)
		}
		i++
		for i < len(b) && b[i] != '"' {
			if b[i] == '\\' {
				i++
			}
			i++
		}
		if i >= len(b) {
			return n, fmt.Errorf("unterminated string in %q", field)
		}
		n++
		i = skipSpace(b, i+1)
		if i >= len(b) {
			return n, fmt.Errorf("unterminated array %q", field)
		}
		switch b[i] {
		case ']':
			return n, nil
		case ',':
			i = skipSpace(b, i+1)
		default:
			return n, fmt.Errorf("unexpected %q after element %d of %q", b[i], n, field)
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
