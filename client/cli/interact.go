package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progress is a bar on stderr, drawn only when stderr is a terminal
// (nothing at all otherwise: logs and pipes get no control characters):
//
//	deleting manifests [##########----------]  12/24
type progress struct {
	s     *Streams
	label string
	total int

	mu    sync.Mutex
	done  int
	drawn time.Time
}

func (s *Streams) progress(label string, total int) *progress {
	p := &progress{s: s, label: label, total: total}
	p.draw(true)
	return p
}

// set records that n of total are done.
func (p *progress) set(n, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done, p.total = n, total
	p.drawLocked(n == total)
}

func (p *progress) add(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	p.drawLocked(p.done == p.total)
}

func (p *progress) draw(force bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drawLocked(force)
}

// drawLocked redraws at most ten times a second, and always at the end.
func (p *progress) drawLocked(force bool) {
	if !p.s.ErrTerminal {
		return
	}
	now := time.Now()
	if !force && now.Sub(p.drawn) < 100*time.Millisecond {
		return
	}
	p.drawn = now
	width := p.s.Width
	if width <= 0 {
		width = 80
	}
	count := fmt.Sprintf(" %d/%d", p.done, p.total)
	barLen := min(40, width-len(p.label)-len(count)-4)
	var bar string
	if barLen >= 10 && p.total > 0 {
		fill := barLen * min(p.done, p.total) / p.total
		bar = " [" + strings.Repeat("#", fill) + strings.Repeat("-", barLen-fill) + "]"
	}
	// \r and erase-line: the bar rewrites itself in place.
	fmt.Fprintf(p.s.Err, "\r\x1b[K%s%s%s", p.label, bar, count)
}

// finish leaves the final state on its own line.
func (p *progress) finish() {
	if !p.s.ErrTerminal {
		return
	}
	p.draw(true)
	fmt.Fprintln(p.s.Err)
}

// confirm asks a yes/no question on stderr and reads the answer from
// stdin; only y or yes goes ahead.
func (s *Streams) confirm(ctx context.Context, question string, yes bool) error {
	return s.ask(ctx, question+" [y/N] ", yes, func(answer string) bool {
		a := strings.ToLower(answer)
		return a == "y" || a == "yes"
	})
}

// confirmName asks for the repository's name to be typed, as a
// confirmation for deleting all of it.
func (s *Streams) confirmName(ctx context.Context, name string, yes bool) error {
	return s.ask(ctx, fmt.Sprintf("Type the repository's name (%s) to delete it: ", name), yes,
		func(answer string) bool { return answer == name })
}

// ask shows prompt and goes ahead when ok accepts the answer. With yes it
// does not ask. Without a terminal on stdin it does not guess: it refuses,
// and says how to go ahead in a script.
func (s *Streams) ask(ctx context.Context, prompt string, yes bool, ok func(answer string) bool) error {
	if yes {
		return nil
	}
	if !s.InTerminal {
		return fmt.Errorf("%w: stdin is not a terminal, so there is no one to ask; add --yes to go ahead without a question (or --dry-run to see the plan)", errDeclined)
	}
	fmt.Fprint(s.Err, prompt)
	line, err := s.readLine(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil && line == "" {
		fmt.Fprintln(s.Err)
		return fmt.Errorf("%w: no answer", errDeclined)
	}
	if !ok(strings.TrimSpace(line)) {
		return fmt.Errorf("%w: not confirmed", errDeclined)
	}
	return nil
}

// readLine reads up to a newline, a byte at a time: nothing after the
// answer is taken from stdin (a later prompt, or a password, reads it).
func readLine(in io.Reader) (string, error) {
	var b []byte
	buf := make([]byte, 1)
	for {
		n, err := in.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				return string(b), nil
			}
			b = append(b, buf[0])
		}
		if err != nil {
			return string(b), err
		}
	}
}

// readLine reads a line from stdin, giving up when ctx is done: Ctrl-C
// cancels ctx (registryd catches the signal), and a read from a terminal
// would not end by itself.
func (s *Streams) readLine(ctx context.Context) (string, error) {
	return readCancelable(ctx, func() (string, error) { return readLine(s.In) }, nil)
}

// readCancelable runs read until it returns or ctx is done; then abandon
// runs (it puts the terminal back as it was).
func readCancelable(ctx context.Context, read func() (string, error), abandon func()) (string, error) {
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		l, err := read()
		ch <- result{l, err}
	}()
	select {
	case r := <-ch:
		return r.line, r.err
	case <-ctx.Done():
		if abandon != nil {
			abandon()
		}
		return "", ctx.Err()
	}
}
