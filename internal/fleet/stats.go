package fleet

// Stats are the engine's counters, for metrics, tests and benchmarks.
type Stats struct {
	Informs        int64
	Progress       int64
	Requests       int64
	Stale          int64
	UnknownProduct int64
	Pushed         int64
	Repushed       int64
	PublishFailed  int64
	Succeeded      int64
	Writes         int64
	WriteErrors    int64
	// InvalidRecords counts slice lines that did not read at start-up.
	InvalidRecords int64
}

// Stats returns a copy of the counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.unlock()
	return e.stats
}
