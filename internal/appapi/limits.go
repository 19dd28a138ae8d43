package appapi

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// userLimiter is a token bucket per user. Buckets of users who have been
// idle long enough to be full again are forgotten, so memory follows the
// active users rather than every user ever seen.
type userLimiter struct {
	limit rate.Limit
	burst int
	idle  time.Duration

	mu        sync.Mutex
	users     map[string]*userBucket
	lastSweep time.Time
}

type userBucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newUserLimiter(perSecond float64, burst int) *userLimiter {
	l := &userLimiter{limit: rate.Limit(perSecond), burst: burst, users: map[string]*userBucket{}}
	if perSecond <= 0 {
		l.limit = rate.Inf
	}
	// A bucket idle this long has refilled: dropping it changes nothing.
	l.idle = time.Minute
	if perSecond > 0 {
		l.idle = max(l.idle, time.Duration(float64(burst)/perSecond*float64(time.Second)))
	}
	return l
}

// allow takes a token for user, or says how long to wait for one.
func (l *userLimiter) allow(user string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > l.idle {
		for u, b := range l.users {
			if now.Sub(b.last) > l.idle {
				delete(l.users, u)
			}
		}
		l.lastSweep = now
	}
	b := l.users[user]
	if b == nil {
		b = &userBucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.users[user] = b
	}
	b.last = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		// Give the token back: a refused request must not cost the user.
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// streamCounter bounds the progress streams each user holds open.
type streamCounter struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

func (s *streamCounter) acquire(user string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[user] >= s.max {
		return false
	}
	s.n[user]++
	return true
}

func (s *streamCounter) release(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[user]--; s.n[user] <= 0 {
		delete(s.n, user)
	}
}
