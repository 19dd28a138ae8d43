package devicesim

import "testing"

// TestRouting: a connection finds its own devices by the topic alone and
// nobody else's, whatever the topic's shape.
func TestRouting(t *testing.T) {
	f := &Fleet{cfg: Config{NamePrefix: "dev-", Devices: 5}}
	for range 2 {
		f.conns = append(f.conns, &conn{f: f})
	}
	for i := range 5 {
		f.devices = append(f.devices, &device{name: f.cfg.deviceName(i), conn: f.conns[i%2]})
	}
	c0, c1 := f.conns[0], f.conns[1]
	for _, tc := range []struct {
		topic string
		conn  *conn
		want  int // index of the device found, -1 none
	}{
		{"/ota/device/upgrade/pk/dev-000002", c0, 2},
		{"/ota/device/upgrade/pk/dev-000002", c1, -1}, // another connection's device
		{"/ota/device/upgrade/pk/dev-000003", c1, 3},
		{"/sys/pk/dev-000004/thing/ota/firmware/get_reply", c0, 4},
		{"/ota/device/request/pk/dev-000001", c1, 1},
		{"/ota/device/upgrade/pk/dev-0000002", c0, -1}, // same index, not the name
		{"/ota/device/upgrade/pk/dev-000005", c1, -1},  // past the fleet
		{"/ota/device/upgrade/pk/dev-00000x", c0, -1},
		{"/ota/device/upgrade/pk/dev-", c0, -1},
		{"/ota/device/upgrade/pk/other-000002", c0, -1},
		{"/sys/pk", c0, -1},
		{"dev-000000", c0, 0},
	} {
		got := tc.conn.device(topicDevice([]byte(tc.topic)))
		if (tc.want < 0 && got != nil) || (tc.want >= 0 && got != f.devices[tc.want]) {
			t.Errorf("%s on connection %p: %v, want device %d", tc.topic, tc.conn, got, tc.want)
		}
	}
}
