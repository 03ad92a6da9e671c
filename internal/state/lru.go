package state

import (
	"hash/maphash"
	"sync"
)

// table is a bounded map from a 64-bit key hash to a value, split into
// shards that each have their own lock and their own least-recently-used
// list. Entries live in one slice per shard and are linked by index, so a
// shard is two allocations however many entries it holds, and a lookup of
// an existing key allocates nothing.
//
// The index of a shard is an open-addressing table with linear probing and
// backward-shift deletion rather than a Go map: a table that is always
// full and always evicting deletes as often as it inserts, and deletion
// without tombstones keeps lookups of unknown keys (every new client in a
// flood) as short as in a fresh table.
//
// Keys are hashed with a per-process random seed; two keys that collide
// (about one chance in 10^10 with 100k entries) would share an entry,
// which is harmless for counters and buckets. Bans keep their full key in
// the value and are compared on it.
type table[V any] struct {
	seed   maphash.Seed
	shards []shard[V]
	mask   uint64
}

type shard[V any] struct {
	mu    sync.Mutex
	slots []uint64 // see slotOf; len is a power of two
	count int
	nodes []node[V]
	head  int32 // most recently used, -1 when empty
	tail  int32 // least recently used, -1 when empty
	free  int32 // first free node, linked through next, -1 when none
	limit int
	_     [40]byte // keep neighbouring shard locks off the same cache line
}

type node[V any] struct {
	hash       uint64
	prev, next int32
	exp        int64 // unix nanoseconds after which the entry is dead; 0 = never
	val        V
}

const (
	nilNode  = -1
	minSlots = 16
)

// newTable returns a table holding at most maxEntries entries in total.
func newTable[V any](maxEntries int) *table[V] {
	if maxEntries < 1 {
		maxEntries = 1
	}
	n := 1
	for n < 64 && maxEntries/(n*2) >= 256 {
		n *= 2
	}
	t := &table[V]{seed: maphash.MakeSeed(), shards: make([]shard[V], n), mask: uint64(n - 1)}
	per := maxEntries / n
	for i := range t.shards {
		s := &t.shards[i]
		s.slots = make([]uint64, minSlots)
		s.head, s.tail, s.free = nilNode, nilNode, nilNode
		s.limit = per
	}
	return t
}

func (t *table[V]) hash(key string) uint64 { return maphash.String(t.seed, key) }

func (t *table[V]) shardOf(h uint64) *shard[V] { return &t.shards[(h>>58)&t.mask] }

// remove deletes the entry of key, if any.
func (t *table[V]) remove(key string) {
	h := t.hash(key)
	s := t.shardOf(h)
	s.mu.Lock()
	s.delete(h)
	s.mu.Unlock()
}

// len returns the number of entries, dead or alive, held by the table.
func (t *table[V]) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += s.count
		s.mu.Unlock()
	}
	return n
}

// A slot holds the upper 32 bits of an entry's hash (which also choose its
// home position) and its node index + 1, so that probing compares slots
// without touching the nodes; 0 is an empty slot.
func slotOf(h uint64, i int32) uint64 { return h&^0xFFFFFFFF | uint64(uint32(i+1)) }

func slotHome(v, mask uint64) uint64 { return (v >> 32) & mask }

// find returns the node index of h, or nilNode. The caller holds s.mu.
func (s *shard[V]) find(h uint64) int32 {
	mask := uint64(len(s.slots) - 1)
	tag := h >> 32
	for p := tag & mask; ; p = (p + 1) & mask {
		v := s.slots[p]
		if v == 0 {
			return nilNode
		}
		if v>>32 == tag {
			if i := int32(uint32(v)) - 1; s.nodes[i].hash == h {
				return i
			}
		}
	}
}

// index records node i under its hash. The caller holds s.mu and has
// checked that the hash is absent.
func (s *shard[V]) index(i int32) {
	if 2*(s.count+1) > len(s.slots) {
		s.grow()
	}
	mask := uint64(len(s.slots) - 1)
	v := slotOf(s.nodes[i].hash, i)
	p := slotHome(v, mask)
	for s.slots[p] != 0 {
		p = (p + 1) & mask
	}
	s.slots[p] = v
	s.count++
}

// grow doubles the index, keeping the load factor at most one half.
func (s *shard[V]) grow() {
	old := s.slots
	s.slots = make([]uint64, 2*len(old))
	mask := uint64(len(s.slots) - 1)
	for _, v := range old {
		if v == 0 {
			continue
		}
		p := slotHome(v, mask)
		for s.slots[p] != 0 {
			p = (p + 1) & mask
		}
		s.slots[p] = v
	}
}

// unindex removes node i (whose hash is h) from the index, shifting back
// the entries that follow it in its probe run so that no tombstone is left.
func (s *shard[V]) unindex(h uint64, i int32) {
	mask := uint64(len(s.slots) - 1)
	want := slotOf(h, i)
	p := slotHome(want, mask)
	for {
		v := s.slots[p]
		if v == 0 {
			return
		}
		if v == want {
			break
		}
		p = (p + 1) & mask
	}
	s.count--
	hole := p
	for q := (hole + 1) & mask; ; q = (q + 1) & mask {
		v := s.slots[q]
		if v == 0 {
			break
		}
		home := slotHome(v, mask)
		// The entry at q may move into the hole unless its home lies
		// cyclically in (hole, q].
		if (q > hole && (home <= hole || home > q)) || (q < hole && home <= hole && home > q) {
			s.slots[hole] = v
			hole = q
		}
	}
	s.slots[hole] = 0
}

// get returns the node of h, marking it most recently used, or nil.
// The caller holds s.mu.
func (s *shard[V]) get(h uint64) *node[V] {
	i := s.find(h)
	if i == nilNode {
		return nil
	}
	s.moveToFront(i)
	return &s.nodes[i]
}

// insert adds a node for h, evicting the least recently used entry (or,
// when evictable is set, the least recently used entry it accepts among
// the last few) if the shard is full. The caller holds s.mu and has
// checked that h is absent.
func (s *shard[V]) insert(h uint64, evictable func(*V) bool) *node[V] {
	if s.count >= s.limit {
		victim := s.tail
		if evictable != nil {
			for i, n := s.tail, 0; i != nilNode && n < 8; i, n = s.nodes[i].prev, n+1 {
				if evictable(&s.nodes[i].val) {
					victim = i
					break
				}
			}
		}
		s.remove(victim)
	}
	var i int32
	if s.free != nilNode {
		i = s.free
		s.free = s.nodes[i].next
	} else {
		s.nodes = append(s.nodes, node[V]{})
		i = int32(len(s.nodes) - 1)
	}
	s.nodes[i] = node[V]{hash: h, prev: nilNode, next: s.head}
	if s.head != nilNode {
		s.nodes[s.head].prev = i
	}
	s.head = i
	if s.tail == nilNode {
		s.tail = i
	}
	s.index(i)
	return &s.nodes[i]
}

// delete removes h if present. The caller holds s.mu.
func (s *shard[V]) delete(h uint64) bool {
	i := s.find(h)
	if i == nilNode {
		return false
	}
	s.remove(i)
	return true
}

func (s *shard[V]) unlink(i int32) {
	n := &s.nodes[i]
	if n.prev != nilNode {
		s.nodes[n.prev].next = n.next
	} else {
		s.head = n.next
	}
	if n.next != nilNode {
		s.nodes[n.next].prev = n.prev
	} else {
		s.tail = n.prev
	}
}

func (s *shard[V]) moveToFront(i int32) {
	if s.head == i {
		return
	}
	s.unlink(i)
	n := &s.nodes[i]
	n.prev, n.next = nilNode, s.head
	s.nodes[s.head].prev = i
	s.head = i
	if s.tail == nilNode {
		s.tail = i
	}
}

func (s *shard[V]) remove(i int32) {
	s.unlink(i)
	s.unindex(s.nodes[i].hash, i)
	s.nodes[i] = node[V]{next: s.free} // drop references held by the value
	s.free = i
}

// sweep removes every entry dead at now.
func (t *table[V]) sweep(now int64) {
	for k := range t.shards {
		s := &t.shards[k]
		s.mu.Lock()
		for i := s.tail; i != nilNode; {
			prev := s.nodes[i].prev
			if exp := s.nodes[i].exp; exp != 0 && exp <= now {
				s.remove(i)
			}
			i = prev
		}
		s.mu.Unlock()
	}
}

// each calls fn for every entry alive at now.
func (t *table[V]) each(now int64, fn func(*V)) {
	for k := range t.shards {
		s := &t.shards[k]
		s.mu.Lock()
		for i := s.head; i != nilNode; i = s.nodes[i].next {
			if exp := s.nodes[i].exp; exp == 0 || exp > now {
				fn(&s.nodes[i].val)
			}
		}
		s.mu.Unlock()
	}
}
