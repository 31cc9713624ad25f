// Package dispatch keeps the open emergency calls of the service in memory.
package dispatch

import (
	"errors"
	"sort"
	"sync"
	"time"
)

// Call is one emergency call waiting for a unit.
type Call struct {
	ID       int       `json:"id"`
	Kind     string    `json:"kind"`
	Location string    `json:"location"`
	Priority int       `json:"priority"`
	Received time.Time `json:"received"`
}

// Board holds the open calls, highest priority first.
type Board struct {
	mu    sync.Mutex
	next  int
	calls []Call
}

// ErrInvalid is returned for a call without a kind or location, or with a priority outside 1..5.
var ErrInvalid = errors.New("a call needs a kind, a location and a priority from 1 to 5")

// Open records a call and returns it with its id.
func (b *Board) Open(kind, location string, priority int, now time.Time) (Call, error) {
	if kind == "" || location == "" || priority < 1 || priority > 5 {
		return Call{}, ErrInvalid
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.next++
	c := Call{ID: b.next, Kind: kind, Location: location, Priority: priority, Received: now}
	b.calls = append(b.calls, c)
	sort.SliceStable(b.calls, func(i, j int) bool { return b.calls[i].Priority > b.calls[j].Priority })
	return c, nil
}

// Open calls, highest priority first.
func (b *Board) List() []Call {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Call(nil), b.calls...)
}
