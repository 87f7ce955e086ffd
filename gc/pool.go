package gc

import "sync"

// pool runs tasks on a bounded number of workers and finishes them in the
// order they were submitted, one at a time, on a single goroutine. That
// keeps what a collection records (the removal list, warnings, which
// failure stops it) exactly what a sequential run records, while the
// storage calls, mostly kernel time or network round trips, overlap.
//
// At most window tasks are in flight, so memory stays bounded whatever the
// producer enumerates. Once a finish function fails, submit reports the
// error and the producer stops; tasks already submitted still run, but no
// finish function runs after the failing one.
type pool struct {
	work  chan *task
	queue chan *task
	wg    sync.WaitGroup
	done  chan struct{}

	mu  sync.Mutex
	err error
}

type task struct {
	run    func()
	finish func() error
	ran    chan struct{}
}

func newPool(workers int) *pool {
	if workers < 1 {
		workers = 1
	}
	window := 4 * workers
	p := &pool{
		work:  make(chan *task, window),
		queue: make(chan *task, window),
		done:  make(chan struct{}),
	}
	p.wg.Add(workers)
	for range workers {
		go func() {
			defer p.wg.Done()
			for t := range p.work {
				t.run()
				close(t.ran)
			}
		}()
	}
	go func() {
		defer close(p.done)
		for t := range p.queue {
			<-t.ran
			if p.failed() != nil || t.finish == nil {
				continue
			}
			if err := t.finish(); err != nil {
				p.mu.Lock()
				p.err = err
				p.mu.Unlock()
			}
		}
	}()
	return p
}

func (p *pool) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// submit queues run on a worker and finish after every earlier task's
// finish. It returns the first error of a finish function, if any, without
// queueing anything.
func (p *pool) submit(run func(), finish func() error) error {
	if err := p.failed(); err != nil {
		return err
	}
	t := &task{run: run, finish: finish, ran: make(chan struct{})}
	p.queue <- t
	p.work <- t
	return nil
}

// wait runs what was submitted to the end and returns the first error of a
// finish function. The pool cannot be used afterwards.
func (p *pool) wait() error {
	close(p.work)
	close(p.queue)
	p.wg.Wait()
	<-p.done
	return p.failed()
}
