package v2

import (
	"net/http"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/registryd/registryd/storage/driver"
)

// faultRepeat is how often a storage fault that lasts is logged again.
const faultRepeat = time.Minute

// faultLog names storage faults in the log as conditions, not only as the
// failed requests of the access log: a warning when requests start failing
// for a cause (the storage is full, throttled, unreachable), again every
// faultRepeat while it lasts, and a line when it is over, which for a full
// storage is the first write that succeeds (pulls succeed throughout).
// Nothing here changes what is served: every request tries the storage,
// so writing resumes by itself once space is freed.
type faultLog struct {
	log logrus.FieldLogger

	mu     sync.Mutex
	active map[driver.Fault]*faultState
}

type faultState struct {
	since, logged time.Time
	refused       int
}

func newFaultLog(log logrus.FieldLogger) *faultLog {
	return &faultLog{log: log, active: map[driver.Fault]*faultState{}}
}

var faultWhat = map[driver.Fault]string{
	driver.FaultFull:        "the storage is full (no space left, or quota exceeded): writes are answered 503 UNAVAILABLE until space is freed",
	driver.FaultThrottled:   "the storage backend throttles requests (slow down) beyond the driver's retries: requests are answered 503 UNAVAILABLE",
	driver.FaultUnreachable: "the storage backend cannot be reached beyond the driver's retries: requests are answered 503 UNAVAILABLE",
}

// observe records a finished request: its answer's status and the error
// it was answered with (nil for none).
func (f *faultLog) observe(r *http.Request, status int, err error) {
	if f == nil || f.log == nil {
		return
	}
	now := time.Now()
	if fault, _ := driver.FaultOf(err); fault != "" {
		f.mu.Lock()
		st := f.active[fault]
		first := st == nil
		if first {
			st = &faultState{since: now}
			f.active[fault] = st
		}
		st.refused++
		due := first || now.Sub(st.logged) >= faultRepeat
		if due {
			st.logged = now
		}
		refused, since := st.refused, st.since
		f.mu.Unlock()
		if due {
			e := f.log.WithFields(logrus.Fields{"storage_fault": string(fault), "refused": refused})
			if !first {
				e = e.WithField("since", since.Format(time.RFC3339))
			}
			msg := faultWhat[fault]
			if msg == "" {
				msg = "storage fault " + string(fault) + ": requests are answered 503 UNAVAILABLE"
			}
			e.WithError(err).Warn(msg)
		}
		return
	}
	if status >= 400 || !touchesStorage(r) {
		return
	}
	write := r.Method == http.MethodPut || r.Method == http.MethodPost || r.Method == http.MethodPatch
	f.mu.Lock()
	var over []driver.Fault
	var states []faultState
	for fault, st := range f.active {
		// A full storage still serves reads: only a write shows that
		// space was freed.
		if fault == driver.FaultFull && !write {
			continue
		}
		over = append(over, fault)
		states = append(states, *st)
		delete(f.active, fault)
	}
	f.mu.Unlock()
	for i, fault := range over {
		f.log.WithFields(logrus.Fields{
			"storage_fault": string(fault),
			"refused":       states[i].refused,
			"lasted":        now.Sub(states[i].since).Round(time.Millisecond).String(),
		}).Info("storage fault over: requests succeed again")
	}
}

// touchesStorage tells the requests whose success says the storage works:
// everything under /v2/ but the version check.
func touchesStorage(r *http.Request) bool {
	p := r.URL.Path
	return len(p) > len("/v2/") && p[:len("/v2/")] == "/v2/"
}
