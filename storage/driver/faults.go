package driver

import (
	"errors"
	"fmt"
	"time"
)

// A Fault names why a storage operation failed when the cause is the
// storage's condition, not the request: the same request may succeed once
// the condition passes, with no operator involved. The registry answers
// such failures 503 UNAVAILABLE with Retry-After (never 500, which says
// the server is broken, nor 4xx, which says the request is), and logs and
// counts them by cause.
type Fault string

const (
	// FaultFull: no space is left (ENOSPC), the quota is exhausted
	// (EDQUOT), or the object store says it is out of capacity.
	FaultFull Fault = "full"
	// FaultThrottled: the backend asks the registry to slow down (S3
	// SlowDown, 503 Service Unavailable, 429), still after the driver's
	// own retries.
	FaultThrottled Fault = "throttled"
	// FaultUnreachable: the backend cannot be reached (connection refused
	// or reset, a timeout), still after the driver's own retries.
	FaultUnreachable Fault = "unreachable"
)

// FaultError is how a driver reports a Fault that the system's errors do
// not already say (the filesystem's ENOSPC needs no wrapping; an object
// store's SlowDown does).
type FaultError struct {
	Fault Fault
	// RetryAfter is the backend's hint of when to try again; 0 for none.
	RetryAfter time.Duration
	// Err is the failure as the backend reported it: for the log only, it
	// may name paths and buckets.
	Err error
}

func (e *FaultError) Error() string {
	if e.Err == nil {
		return "storage " + string(e.Fault)
	}
	return fmt.Sprintf("storage %s: %v", e.Fault, e.Err)
}

func (e *FaultError) Unwrap() error { return e.Err }

// FaultOf returns the Fault err reports, "" for none, with the backend's
// retry hint (0 for none): a *FaultError anywhere in err's chain, or the
// system's "no space left on device" and "disk quota exceeded".
func FaultOf(err error) (Fault, time.Duration) {
	if err == nil {
		return "", 0
	}
	var fe *FaultError
	if errors.As(err, &fe) {
		return fe.Fault, fe.RetryAfter
	}
	if isFullErr(err) {
		return FaultFull, 0
	}
	return "", 0
}
