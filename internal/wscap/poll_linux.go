package wscap

import (
	"errors"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rampart-proxy/rampart/internal/observe"
)

// poller is the one epoll instance of the process. It watches the sockets
// of parked tunnel legs (EPOLLONESHOT: one wake-up per arming) and starts a
// pump for a leg when its socket becomes readable or is hung up. Its own
// goroutine sits in epoll_wait; nothing else runs while every tunnel is
// idle.
type poller struct {
	fd int

	mu   sync.Mutex
	legs map[uint64]*leg // armed at least once and not yet removed
	next uint64
}

var (
	pollerOnce sync.Once
	thePoller  *poller
)

// getPoller returns the process's poller, started on first use, or nil when
// epoll is not available (tunnels then keep a goroutine per direction).
func getPoller() *poller {
	pollerOnce.Do(func() {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			observe.Default().Event(slog.LevelWarn, stage, slog.String("reason", "epoll-unavailable"), slog.String("error", err.Error()))
			return
		}
		thePoller = &poller{fd: fd, legs: map[uint64]*leg{}}
		go thePoller.loop()
	})
	return thePoller
}

// arm asks for one wake-up when l's socket has something to read (data,
// end of stream or an error). It fails when the connection is already
// closed: RawConn.Control holds the descriptor while the call runs, so a
// closed and reused descriptor number is never touched.
func (p *poller) arm(l *leg) error {
	p.mu.Lock()
	if l.key == 0 {
		p.next++
		l.key = p.next
		p.legs[l.key] = l
	}
	key, add := l.key, !l.added
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
	setKey(&ev, key)
	var err error
	cerr := l.raw.Control(func(fd uintptr) {
		if add {
			err = unix.EpollCtl(p.fd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		} else {
			err = unix.EpollCtl(p.fd, unix.EPOLL_CTL_MOD, int(fd), &ev)
		}
	})
	if cerr != nil {
		return cerr
	}
	if err == nil && add {
		p.mu.Lock()
		l.added = true
		p.mu.Unlock()
	}
	return err
}

// remove forgets l. Call it before l's connection is closed; a descriptor
// that is closed already has left the epoll set by itself.
func (p *poller) remove(l *leg) {
	p.mu.Lock()
	key, added := l.key, l.added
	delete(p.legs, key)
	l.added = false
	p.mu.Unlock()
	if added {
		_ = l.raw.Control(func(fd uintptr) {
			_ = unix.EpollCtl(p.fd, unix.EPOLL_CTL_DEL, int(fd), nil)
		})
	}
}

func (p *poller) loop() {
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(p.fd, events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			// Not expected with a valid descriptor; do not spin.
			observe.Default().Event(slog.LevelError, stage, slog.String("reason", "epoll-wait"), slog.String("error", err.Error()))
			time.Sleep(100 * time.Millisecond)
			continue
		}
		for i := range events[:n] {
			key := getKey(&events[i])
			p.mu.Lock()
			l := p.legs[key]
			p.mu.Unlock()
			if l != nil {
				go l.pump()
			}
		}
	}
}

// The key of a leg travels in the event's data field (Fd and Pad).
func setKey(ev *unix.EpollEvent, key uint64) {
	ev.Fd, ev.Pad = int32(uint32(key)), int32(uint32(key>>32))
}

func getKey(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}
