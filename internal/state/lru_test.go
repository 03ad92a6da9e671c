package state

import (
	"math/rand/v2"
	"testing"
)

// TestTable_IndexMatchesAModel drives one shard with random inserts,
// lookups and deletes (with hashes chosen to collide often) and checks it
// against a plain map after every step.
func TestTable_IndexMatchesAModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tb := newTable[int](200)
	s := &tb.shards[0]
	model := map[uint64]int{}
	for step := range 200_000 {
		h := rng.Uint64N(400) * 0x9E3779B97F4A7C15 >> 3 // few distinct values, clustered
		switch rng.IntN(3) {
		case 0:
			if n := s.get(h); n != nil {
				n.val = step
				model[h] = step
				break
			}
			if s.count >= s.limit {
				// Eviction takes the tail; mirror it in the model.
				delete(model, s.nodes[s.tail].hash)
			}
			s.insert(h, nil).val = step
			model[h] = step
		case 1:
			n := s.get(h)
			v, ok := model[h]
			if (n != nil) != ok || (ok && n.val != v) {
				t.Fatalf("step %d: get(%x) = %v, model has %v %v", step, h, n, v, ok)
			}
		case 2:
			_, ok := model[h]
			if got := s.delete(h); got != ok {
				t.Fatalf("step %d: delete(%x) = %v, model %v", step, h, got, ok)
			}
			delete(model, h)
		}
		if s.count != len(model) {
			t.Fatalf("step %d: count %d, model %d", step, s.count, len(model))
		}
	}
	for h, v := range model {
		if n := s.get(h); n == nil || n.val != v {
			t.Fatalf("final: %x missing", h)
		}
	}
}
