package protocol

import (
	"strings"
	"testing"
)

func TestCheckDeviceURL(t *testing.T) {
	long := "http://dl.example.com/f/" + strings.Repeat("a", 180)
	cases := []struct {
		url  string
		want string // substring of the error; "" for none
	}{
		{"http://dl.example.com/f/AbC-_0/fw/0b7c.bin", ""},
		{"https://dl.example.com/f/x", ""},
		{"http://127.0.0.1/f/x", ""},
		{"http://dl.example.com:80/f/x", "port"},
		{"http://dl.example.com:8080/f/x", "port"},
		{"http://dl.example.com:/f/x", "port"},
		{"http://user:pw@dl.example.com/f/x", "userinfo"},
		{"ftp://dl.example.com/f/x", "http"},
		{"/f/x", "http"},
		{long, "bytes"},
		{"http://" + strings.Repeat("h", 256) + "/x", "host"},
	}
	for _, c := range cases {
		err := CheckDeviceURL(c.url)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: unexpected error %v", c.url, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want one about %q", c.url, err, c.want)
		}
	}
}
