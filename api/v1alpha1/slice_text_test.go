package v1alpha1

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestTaskListRoundTrip(t *testing.T) {
	in := TaskList{
		{Device: "dev-000001", State: TaskSucceeded, Attempt: 1, Step: 100, FromVersion: "1.0.0", Wave: 1, Updated: 1764072000},
		{Device: "plug kitchen \"2\"", State: TaskFailed, Attempt: 3, Step: -2, FromVersion: "1.0.0",
			Reason: "DownloadFailed", Message: "HTTP 404 = not found\n\tretry", Updated: 1764072003, Started: 1764071990, RetryAt: 1764072100},
		{Device: "设备-7", State: TaskConfirm},
		{Device: "dev-000009", State: TaskSoaking, Attempt: 1, Step: 100, Updated: 1764072050, SoakStart: 1764072050},
		{Device: "dev-000010", State: TaskFailed, Reason: FailureReverted, Message: "reported 1.0.0 5s into the soak", SoakStart: 1764072050},
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var text string
	if err := json.Unmarshal(b, &text); err != nil {
		t.Fatalf("not a JSON string: %s", b)
	}
	if first := strings.Split(text, "\n")[0]; first != "dev-000001 SUCCEEDED a=1 p=100 fv=1.0.0 w=1 u=1764072000" {
		t.Fatalf("first line %q", first)
	}
	var out TaskList
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n in %+v\nout %+v\ntext %s", in, out, text)
	}
	if soaking := strings.Split(text, "\n")[3]; soaking != "dev-000009 SOAKING a=1 p=100 u=1764072050 sk=1764072050" {
		t.Fatalf("soaking line %q", soaking)
	}
}

func TestDeviceListRoundTrip(t *testing.T) {
	in := DeviceList{
		{Name: "dev-1", LastSeen: 1764072000, Modules: []ModuleVersion{{"wifi", "1.1.0"}, {"mcu", "2.0.0"}},
			Lock: &DeviceLock{Campaign: "UpgradeBatch/mcu", Module: "mcu", State: TaskNotified}},
		{Name: "dev 2", Modules: []ModuleVersion{{"default", "1.0.0"}}},
		{Name: "dev-3"},
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"dev-1 ls=1764072000 v.wifi=1.1.0 v.mcu=2.0.0 lock=UpgradeBatch/mcu,mcu,NOTIFIED\n`; !strings.HasPrefix(string(b), want) {
		t.Fatalf("got %s, want it to start with %s", b, want)
	}
	var out DeviceList
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n in %+v\nout %+v", in, out)
	}
}

// A line that does not read is kept as an invalid entry; the others load.
func TestBadLinesAreMarkedNotFatal(t *testing.T) {
	for _, bad := range []string{
		"dev-2 DONE",                 // unknown state
		"dev-2 FAILED a=x",           // not a number
		"dev-2 FAILED zz=1",          // unknown field
		`dev-2 FAILED msg="open`,     // unterminated quote
		"dev-2 FAILED a=1  p=2",      // two spaces
		"",                           // empty line between others
		`"dev-2"x SUCCEEDED`,         // junk after a quoted name
		"dev-2 FAILED p=99999999999", // out of range
	} {
		text := "dev-1 SUCCEEDED a=1\n" + bad + "\ndev-3 QUEUED\n"
		b, _ := json.Marshal(text)
		var l TaskList
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatalf("%q: %v", bad, err)
		}
		if len(l) != 3 || l[0].Device != "dev-1" || l[2].Device != "dev-3" || l[1].Invalid == "" ||
			l[0].Invalid != "" || l[2].Invalid != "" {
			t.Fatalf("%q read as %+v", bad, l)
		}
		if !strings.HasPrefix(l[1].Invalid, "line 2: ") {
			t.Fatalf("%q: reason %q does not name the line", bad, l[1].Invalid)
		}
	}
	var d DeviceList
	if err := json.Unmarshal([]byte(`"dev-1 ls=5\ndev-2 lock=a,b\ndev-3 v.=1\n"`), &d); err != nil {
		t.Fatal(err)
	}
	if len(d) != 3 || d[0].Invalid != "" || d[1].Invalid == "" || d[2].Invalid == "" {
		t.Fatalf("device lines read as %+v", d)
	}
	if err := json.Unmarshal([]byte(`[{"d":"dev-1"}]`), &d); err == nil {
		t.Fatal("a list where a string belongs was accepted")
	}
}
