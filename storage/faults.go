package storage

import (
	"errors"
	"time"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage/driver"
)

// How long a client is told to wait (Retry-After) after a storage fault,
// when the backend gave no hint. Space is freed by people or by a
// collection, so a full storage is asked about less often than a busy one.
const (
	retryAfterFull        = 30 * time.Second
	retryAfterThrottled   = 2 * time.Second
	retryAfterUnreachable = 5 * time.Second
)

// unavailable is the client's answer to a storage fault in err's chain
// (driver.FaultOf): 503 UNAVAILABLE with a message that names the cause,
// and nothing of the storage's own error (paths, buckets), which stays in
// Err for the log. nil when err holds no fault, or is already that answer.
func unavailable(err error) *errcode.Error {
	fault, hint := driver.FaultOf(err)
	if fault == "" || errcode.Is(err, errcode.Unavailable) {
		return nil
	}
	var e *errcode.Error
	switch fault {
	case driver.FaultFull:
		e = errcode.Newf(errcode.Unavailable, "the registry's storage is full: writes are refused until space is freed (pulls are served)").WithRetryAfter(retryAfterFull)
	case driver.FaultThrottled:
		e = errcode.Newf(errcode.Unavailable, "the registry's storage backend is throttling requests: try again later").WithRetryAfter(retryAfterThrottled)
	case driver.FaultUnreachable:
		e = errcode.Newf(errcode.Unavailable, "the registry's storage backend cannot be reached: try again later").WithRetryAfter(retryAfterUnreachable)
	default:
		e = errcode.Newf(errcode.Unavailable, "the registry's storage is unavailable (%s): try again later", fault).WithRetryAfter(retryAfterUnreachable)
	}
	if hint > 0 {
		e.RetryAfter = hint
	}
	return e.WithDetail(map[string]string{"cause": string(fault)}).Wrap(err)
}

// Unavailable returns err as the client should see it when its chain holds
// a storage fault (see unavailable), and err unchanged otherwise. The API
// applies it to every error it answers with, so a fault reported under
// another code on its way up still reaches the client as what it is.
func Unavailable(err error) error {
	if e := unavailable(err); e != nil {
		return e
	}
	return err
}

// storageSideError marks a failure of the storage while a request body is
// copied into it, so that it is not taken for the client's: an upload
// reads the body and writes the storage in one loop.
type storageSideError struct{ err error }

func (e storageSideError) Error() string { return e.err.Error() }
func (e storageSideError) Unwrap() error { return e.err }

// storageSide marks err as the storage's (nil stays nil).
func storageSide(err error) error {
	if err == nil {
		return nil
	}
	return storageSideError{err}
}

func isStorageSide(err error) bool {
	var s storageSideError
	return errors.As(err, &s)
}
