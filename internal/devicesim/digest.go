package devicesim

import (
	"crypto/md5" //nolint:gosec // MD5 is part of the device protocol
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	"github.com/otafleet/otafleet/internal/protocol"
)

// digests hashes an image as it arrives, possibly over several requests.
type digests struct {
	md5  hash.Hash
	sign hash.Hash // nil when the sign is the MD5
	n    int64
}

func newDigests(m protocol.SignMethod) *digests {
	g := &digests{md5: md5.New()} //nolint:gosec // protocol digest
	if m == protocol.SignSHA256 {
		g.sign = sha256.New()
	}
	return g
}

func (g *digests) Write(p []byte) (int, error) {
	g.md5.Write(p)
	if g.sign != nil {
		g.sign.Write(p)
	}
	g.n += int64(len(p))
	return len(p), nil
}

// check compares size and digests with the upgrade's; it returns step 0 on
// a match. u.MD5 is empty for a 4.x device, which reads only sign.
func (g *digests) check(u protocol.Upgrade) (protocol.Step, string) {
	if g.n != u.Size {
		return protocol.StepVerifyFailed, fmt.Sprintf("verify failed: size %d, expected %d", g.n, u.Size)
	}
	gotMD5 := hex.EncodeToString(g.md5.Sum(nil))
	gotSign := gotMD5
	if g.sign != nil {
		gotSign = hex.EncodeToString(g.sign.Sum(nil))
	}
	if (u.MD5 != "" && gotMD5 != u.MD5) || gotSign != u.Sign {
		return protocol.StepVerifyFailed, "verify failed: " + string(u.SignMethod) + " mismatch"
	}
	return 0, ""
}

// readBody reads up to limit bytes of an image of u.Size bytes, of which
// have arrived before, into g, reporting percentages as they pass. It
// returns the bytes read.
func (d *device) readBody(r io.Reader, limit, have int64, u protocol.Upgrade, g *digests) (int64, error) {
	f := d.f
	buf := make([]byte, 32<<10)
	var n int64
	for n < limit {
		k, err := r.Read(buf[:min(int64(len(buf)), limit-n)])
		if k > 0 {
			g.Write(buf[:k])
			n += int64(k)
			f.add(&f.count.bytes, int64(k))
			if pct := (have + n) * 100 / max(u.Size, 1); pct >= 1 && pct <= 99 {
				d.tryReport(u.Module, int(pct))
			}
		}
		if err == io.EOF && n < limit {
			return n, io.ErrUnexpectedEOF
		}
		if err != nil && err != io.EOF {
			return n, err
		}
	}
	return n, nil
}
