package v1alpha1

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Slices store their entries as text, one line per device, instead of a
// JSON list of objects. The API server decodes, prunes, validates and
// re-encodes a custom resource node by node: a 100-entry list of objects
// costs it about three times what the same bytes cost as one string
// (bench/results.md), and slice writes are what bounds a rollout's speed.
// The lines stay readable in `kubectl get -o yaml`:
//
//	tasks: |
//	  dev-000001 SUCCEEDED a=1 p=100 fv=1.0.0 w=1 u=1764072000
//	  dev-000002 FAILED a=1 p=-2 fv=1.0.0 r=DownloadFailed msg="HTTP 404" u=1764072003
//
// A value that is empty or holds a space, a quote, a backslash, an equals
// sign or a control character is written as a Go-quoted string.

// TaskList is an UpgradeSlice's tasks, stored as text: "<device> <STATE>"
// followed by a=attempt p=step fv=fromVersion r=reason msg=message w=wave
// u=updated st=started ra=retryAt n=pushes sk=soakStart, each left out when
// zero.
type TaskList []DeviceTask

// DeviceList is a DeviceSlice's devices, stored as text: "<device>"
// followed by ls=lastSeen, v.<module>=<version> per module in order, and
// lock=<campaign>,<module>,<STATE> when a task holds the device.
type DeviceList []DeviceRecord

var taskStates = map[TaskState]bool{
	TaskConfirm: true, TaskQueued: true, TaskNotified: true, TaskInProgress: true,
	TaskSucceeded: true, TaskFailed: true, TaskTimedOut: true, TaskCanceled: true, TaskSoaking: true,
}

// MarshalJSON writes the tasks as one JSON string of lines.
func (l TaskList) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 64*len(l))
	for _, t := range l {
		b = appendValue(b, t.Device)
		b = append(b, ' ')
		b = append(b, t.State...)
		b = appendInt(b, "a", int64(t.Attempt))
		b = appendInt(b, "p", int64(t.Step))
		b = appendString(b, "fv", t.FromVersion)
		b = appendString(b, "r", t.Reason)
		b = appendString(b, "msg", t.Message)
		b = appendInt(b, "w", int64(t.Wave))
		b = appendInt(b, "u", t.Updated)
		b = appendInt(b, "st", t.Started)
		b = appendInt(b, "ra", t.RetryAt)
		b = appendInt(b, "n", int64(t.Pushes))
		b = appendInt(b, "sk", t.SoakStart)
		b = append(b, '\n')
	}
	return json.Marshal(string(b))
}

// UnmarshalJSON reads the text MarshalJSON writes. The API server cannot
// check the lines (a pattern over 10 KiB costs it a millisecond per write),
// so a line that does not read becomes a task with Invalid set, for the
// reader to count and skip, rather than an error that would hide every
// other slice of the list.
func (l *TaskList) UnmarshalJSON(data []byte) error {
	var out TaskList
	err := eachLine(data, func(name string, r *lineReader) error {
		t := DeviceTask{Device: name}
		err := t.read(r)
		if err == nil {
			out = append(out, t)
		}
		return err
	}, func(name string, err error) { out = append(out, DeviceTask{Device: name, Invalid: err.Error()}) })
	*l = out
	return err
}

func (t *DeviceTask) read(r *lineReader) error {
	state, err := r.word()
	if err != nil {
		return err
	}
	if t.State = TaskState(state); !taskStates[t.State] {
		return fmt.Errorf("unknown state %q", state)
	}
	for r.more() {
		key, val, err := r.pair()
		if err != nil {
			return err
		}
		if err := t.set(key, val); err != nil {
			return err
		}
	}
	return nil
}

func (t *DeviceTask) set(key, val string) error {
	var err error
	switch key {
	case "fv":
		t.FromVersion = val
	case "r":
		t.Reason = val
	case "msg":
		t.Message = val
	case "a":
		t.Attempt, err = parseInt32(val)
	case "p":
		t.Step, err = parseInt32(val)
	case "w":
		t.Wave, err = parseInt32(val)
	case "u":
		t.Updated, err = strconv.ParseInt(val, 10, 64)
	case "st":
		t.Started, err = strconv.ParseInt(val, 10, 64)
	case "ra":
		t.RetryAt, err = strconv.ParseInt(val, 10, 64)
	case "n":
		t.Pushes, err = parseInt32(val)
	case "sk":
		t.SoakStart, err = strconv.ParseInt(val, 10, 64)
	default:
		return fmt.Errorf("unknown field %q", key)
	}
	return err
}

// MarshalJSON writes the devices as one JSON string of lines.
func (l DeviceList) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 48*len(l))
	for _, d := range l {
		b = appendValue(b, d.Name)
		b = appendInt(b, "ls", d.LastSeen)
		for _, m := range d.Modules {
			if needsQuote(m.Module) {
				return nil, fmt.Errorf("device %q: module name %q cannot be written", d.Name, m.Module)
			}
			b = appendString(b, "v."+m.Module, m.Version)
		}
		if k := d.Lock; k != nil {
			lock := k.Campaign + "," + k.Module + "," + string(k.State)
			if strings.Count(lock, ",") != 2 || needsQuote(lock) {
				return nil, fmt.Errorf("device %q: lock %q cannot be written", d.Name, lock)
			}
			b = appendString(b, "lock", lock)
		}
		b = append(b, '\n')
	}
	return json.Marshal(string(b))
}

// UnmarshalJSON reads the text MarshalJSON writes; a line that does not
// read becomes a record with Invalid set, as in TaskList.
func (l *DeviceList) UnmarshalJSON(data []byte) error {
	var out DeviceList
	err := eachLine(data, func(name string, r *lineReader) error {
		d := DeviceRecord{Name: name}
		for r.more() {
			key, val, err := r.pair()
			if err == nil {
				err = d.set(key, val)
			}
			if err != nil {
				return err
			}
		}
		out = append(out, d)
		return nil
	}, func(name string, err error) { out = append(out, DeviceRecord{Name: name, Invalid: err.Error()}) })
	*l = out
	return err
}

func (d *DeviceRecord) set(key, val string) error {
	switch {
	case key == "ls":
		var err error
		d.LastSeen, err = strconv.ParseInt(val, 10, 64)
		return err
	case strings.HasPrefix(key, "v.") && len(key) > 2:
		d.Modules = append(d.Modules, ModuleVersion{Module: key[2:], Version: val})
		return nil
	case key == "lock":
		parts := strings.Split(val, ",")
		if len(parts) != 3 || !taskStates[TaskState(parts[2])] {
			return fmt.Errorf("lock %q is not <campaign>,<module>,<state>", val)
		}
		d.Lock = &DeviceLock{Campaign: parts[0], Module: parts[1], State: TaskState(parts[2])}
		return nil
	}
	return fmt.Errorf("unknown field %q", key)
}

// eachLine decodes the JSON string and calls fn for every line with the
// line's first value (the device name) read; bad gets the lines that do not
// read, with the name if it read. Only a value that is not a JSON string is
// an error.
func eachLine(data []byte, fn func(name string, r *lineReader) error, bad func(name string, err error)) error {
	if string(data) == "null" {
		return nil
	}
	var text string
	if err := json.Unmarshal(data, &text); err != nil {
		return err
	}
	if text == "" {
		return nil
	}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		r := &lineReader{s: line}
		name, err := r.value()
		if err == nil {
			err = fn(name, r)
		}
		if err != nil {
			bad(name, fmt.Errorf("line %d: %w", i+1, err))
		}
	}
	return nil
}

// lineReader reads the space-separated values of one line.
type lineReader struct{ s string }

func (r *lineReader) more() bool { return r.s != "" }

// word reads a bare word after a space (or at the start).
func (r *lineReader) word() (string, error) {
	r.s = strings.TrimPrefix(r.s, " ")
	w, rest, _ := strings.Cut(r.s, " ")
	if w == "" {
		return "", errors.New("missing value")
	}
	r.s = rest
	if rest != "" {
		r.s = " " + rest
	}
	return w, nil
}

// value reads a bare word or a Go-quoted string.
func (r *lineReader) value() (string, error) {
	if !strings.HasPrefix(r.s, `"`) {
		return r.word()
	}
	q, err := strconv.QuotedPrefix(r.s)
	if err != nil {
		return "", fmt.Errorf("bad quoted value in %q", r.s)
	}
	r.s = r.s[len(q):]
	if r.s != "" && r.s[0] != ' ' {
		return "", fmt.Errorf("no space after %s", q)
	}
	return strconv.Unquote(q)
}

// pair reads " key=value".
func (r *lineReader) pair() (key, val string, err error) {
	if !strings.HasPrefix(r.s, " ") {
		return "", "", fmt.Errorf("expected a space before %q", r.s)
	}
	key, rest, ok := strings.Cut(r.s[1:], "=")
	if !ok || key == "" || strings.Contains(key, " ") {
		return "", "", fmt.Errorf("expected key=value at %q", r.s[1:])
	}
	r.s = rest
	val, err = r.value()
	return key, val, err
}

func appendInt(b []byte, key string, v int64) []byte {
	if v == 0 {
		return b
	}
	b = append(b, ' ')
	b = append(b, key...)
	b = append(b, '=')
	return strconv.AppendInt(b, v, 10)
}

func appendString(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ' ')
	b = append(b, key...)
	b = append(b, '=')
	return appendValue(b, v)
}

func appendValue(b []byte, v string) []byte {
	if needsQuote(v) {
		return strconv.AppendQuote(b, v)
	}
	return append(b, v...)
}

func needsQuote(v string) bool {
	if v == "" {
		return true
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c == '"' || c == '\\' || c == '=' || c >= 0x7f {
			return true
		}
	}
	return false
}

func parseInt32(s string) (int32, error) {
	v, err := strconv.ParseInt(s, 10, 32)
	return int32(v), err
}
