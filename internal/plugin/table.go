package plugin

import (
	"io"
	"strings"
)

// streamTable prints rows as they come, unlike text/tabwriter which holds
// everything until Flush. Column widths are fixed by the first batch of
// rows (the first page) and only grow afterwards, so columns stay aligned
// for typical data while memory stays constant for any number of rows.
type streamTable struct {
	w       io.Writer
	header  []string
	pending [][]string
	widths  []int
	started bool
	err     error
}

func newStreamTable(w io.Writer, header ...string) *streamTable {
	return &streamTable{w: w, header: header}
}

// Row adds a row; it is printed at the next Flush.
func (t *streamTable) Row(cells ...string) { t.pending = append(t.pending, cells) }

// Flush prints the pending rows, and the header before the first ones.
func (t *streamTable) Flush() error {
	if !t.started {
		t.widths = make([]int, len(t.header))
		t.grow(t.header)
		for _, r := range t.pending {
			t.grow(r)
		}
		t.write(t.header)
		t.started = true
	}
	for _, r := range t.pending {
		t.write(r)
	}
	t.pending = t.pending[:0]
	return t.err
}

func (t *streamTable) grow(r []string) {
	for i, c := range r {
		if i < len(t.widths) && len(c) > t.widths[i] {
			t.widths[i] = len(c)
		}
	}
}

func (t *streamTable) write(r []string) {
	if t.err != nil {
		return
	}
	var b strings.Builder
	for i, c := range r {
		if i == len(r)-1 {
			b.WriteString(c)
			break
		}
		b.WriteString(c)
		pad := 3
		if i < len(t.widths) {
			pad = t.widths[i] - len(c) + 3
		}
		b.WriteString(strings.Repeat(" ", max(pad, 1)))
	}
	b.WriteByte('\n')
	_, t.err = io.WriteString(t.w, b.String())
}
