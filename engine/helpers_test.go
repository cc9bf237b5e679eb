package engine

// Test-only conveniences over the engine's API: nothing outside the
// engine's tests needs them (keyset publishes with Apply).

// Put adds k, or replaces the key with the same hash, and publishes the
// result: the next check sees it. k must not be changed afterwards.
func (e *Engine) Put(k *Key) { e.Apply(0, []*Key{k}, nil) }

// Remove deletes the key with hash h, if present, and publishes the result.
func (e *Engine) Remove(h Hash) { e.Apply(0, nil, []Hash{h}) }

// Lookup returns what the snapshot holds of the key stored under hash h,
// or nil.
func (s *Snapshot) Lookup(h Hash) *KeyInfo {
	if c, _ := s.find(&h); c != nil {
		return &c.KeyInfo
	}
	return nil
}

// Range calls fn for every key, in no particular order, until fn returns
// false.
func (s *Snapshot) Range(fn func(*KeyInfo) bool) {
	for _, in := range s.root {
		if in == nil {
			continue
		}
		for _, l := range in.leaves {
			if l == nil {
				continue
			}
			for _, b := range l.buckets {
				for i := range b {
					if !fn(&b[i].c.KeyInfo) {
						return
					}
				}
			}
		}
	}
}
