package main

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

// uiTargetMS is the page-time target of the web UI (issue 20): every page
// under 100 ms at 100,000 repositories and 10,000 tags.
const uiTargetMS = 100

// uiPage is one page of the web UI the ui workload times, and a string
// its body must hold (so that a fast error page cannot pass).
type uiPage struct {
	metric *metric
	path   string
	want   string
}

// uiPages are the pages timed over the catalog fixture: repos under
// catalog/, and tags/many with tags tags.
func uiPages(repos, tags int) []uiPage {
	mid := catalogRepo(repos / 2)
	m := func(name string) *metric {
		return &metric{Name: name, Unit: "ms", TargetAbs: uiTargetMS}
	}
	return []uiPage{
		{m(fmt.Sprintf("UI front page, %d repos (+ namespace counts)", repos)), "/ui/", "catalog/r000000"},
		{m(fmt.Sprintf("UI namespace page, %d repos", repos)), "/ui/?ns=catalog", "catalog/r000000"},
		{m(fmt.Sprintf("UI catalog page in the middle, %d repos", repos)), "/ui/?last=" + mid, catalogRepo(repos/2 + 1)},
		{m(fmt.Sprintf("UI search (substring), %d repos", repos)), "/ui/?q=" + strings.TrimPrefix(catalogRepo(repos-1), "catalog/"), catalogRepo(repos - 1)},
		{m(fmt.Sprintf("UI repository page, %d tags, by name", tags)), "/ui/r/tags/many", "t000000"},
		{m(fmt.Sprintf("UI repository page, %d tags, by push time", tags)), "/ui/r/tags/many?sort=pushed", `class="tag"`},
		{m("UI image page"), "/ui/r/tags/many/-/t/t000001", "Layers"},
	}
}

// uiRounds is how many times each page is fetched per repetition; the
// median is the repetition's figure.
const uiRounds = 15

// runUI times the UI pages on s: one warm-up fetch each (registryd's
// caches fill on a first catalog walk), then uiRounds fetches, page after
// page, and records the median time per page in milliseconds.
func runUI(s *server, name string, pages []uiPage) error {
	client := &http.Client{Timeout: 60 * time.Second}
	fetch := func(p uiPage) (time.Duration, error) {
		start := time.Now()
		resp, err := client.Get(s.URL(p.path))
		if err != nil {
			return 0, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		el := time.Since(start)
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), p.want) {
			return 0, fmt.Errorf("GET %s: %s, body lacks %q", p.path, resp.Status, p.want)
		}
		return el, nil
	}
	// The warm-up fetches may fail for a while: a build that makes its
	// first catalog page wait for the whole size index answers it with a
	// timeout error until the index is ready (tens of seconds at 100,000
	// repositories); the time until each answers is logged.
	start := time.Now()
	for _, p := range pages {
		for {
			_, err := fetch(p)
			if err == nil {
				break
			}
			if time.Since(start) > 10*time.Minute {
				return err
			}
			time.Sleep(time.Second)
		}
	}
	if el := time.Since(start); el > 5*time.Second {
		logf("%s: every page answered %.0f s after the start of the warm-up", name, el.Seconds())
	}
	// Pages come without sizes while the size index's first sync after a
	// start runs (tens of seconds at 100,000 repositories): the figures
	// are those of a registry that has sizes, as one that runs for days.
	// (A build without that state blocks its first page until it is
	// ready instead.)
	start = time.Now()
	for {
		resp, err := client.Get(s.URL("/ui/"))
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if !strings.Contains(string(body), "size pending") {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return fmt.Errorf("the front page still has no sizes after %v", time.Since(start))
		}
		time.Sleep(time.Second)
	}
	if el := time.Since(start); el > time.Second {
		logf("%s: sizes on the front page %.0f s after the warm-up fetches", name, el.Seconds())
	}
	times := make([][]float64, len(pages))
	for range uiRounds {
		for i, p := range pages {
			el, err := fetch(p)
			if err != nil {
				return err
			}
			times[i] = append(times[i], el.Seconds()*1000)
		}
	}
	for i, p := range pages {
		sort.Float64s(times[i])
		p.metric.add(name, times[i][len(times[i])/2])
	}
	return nil
}
