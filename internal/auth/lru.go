package auth

import (
	"container/list"
	"sync"
)

// lru is a map bounded to max entries that drops the least recently used
// one when full. Safe for concurrent use.
type lru[K comparable, V any] struct {
	mu  sync.Mutex
	max int
	ll  *list.List // front: most recently used
	m   map[K]*list.Element
}

type lruItem[K comparable, V any] struct {
	key K
	val V
}

func newLRU[K comparable, V any](max int) *lru[K, V] {
	return &lru[K, V]{max: max, ll: list.New(), m: make(map[K]*list.Element)}
}

// get returns the value of k and marks it used.
func (c *lru[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*lruItem[K, V]).val, true
	}
	var zero V
	return zero, false
}

// put sets k to v, evicting the least recently used entry if full.
func (c *lru[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok {
		e.Value.(*lruItem[K, V]).val = v
		c.ll.MoveToFront(e)
		return
	}
	for c.ll.Len() >= c.max && c.ll.Len() > 0 {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.m, last.Value.(*lruItem[K, V]).key)
	}
	c.m[k] = c.ll.PushFront(&lruItem[K, V]{key: k, val: v})
}

// remove forgets k.
func (c *lru[K, V]) remove(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok {
		c.ll.Remove(e)
		delete(c.m, k)
	}
}

// len returns the number of entries.
func (c *lru[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
