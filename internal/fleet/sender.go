package fleet

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/protocol"
)

// sender is the engine's way out to devices: it signs download URLs and
// publishes pushes and replies, outside the engine's lock.
type sender struct {
	pub    Publisher
	signer URLSigner
	// longURLs lets URLs through that devices in the field cannot take.
	longURLs bool
	log      logr.Logger
	// checked is the last URL found fit for devices: a rollout's pushes
	// carry the same URL for minutes, it is checked once.
	checked atomic.Pointer[string]
}

// send signs URLs and publishes msgs, sendWorkers at a time, and returns
// the pushes that could not be sent.
func (s *sender) send(msgs []outgoing) (failed []*task) {
	var errs int
	var lastErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan *outgoing)
	for range min(len(msgs), sendWorkers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
				err := s.sendOne(ctx, o)
				cancel()
				if err != nil {
					mu.Lock()
					errs, lastErr = errs+1, err
					if o.task != nil {
						failed = append(failed, o.task)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range msgs {
		work <- &msgs[i]
	}
	close(work)
	wg.Wait()
	if errs > 0 {
		// One line per batch, not per device: a broker outage fails them all.
		s.log.Info("Sending to devices failed; pushes are retried", "failed", errs, "of", len(msgs), "lastError", lastErr.Error())
	}
	return failed
}

func (s *sender) sendOne(ctx context.Context, o *outgoing) error {
	var up *protocol.Upgrade
	if o.has {
		url, err := s.signer.PresignGet(ctx, o.image.Bucket, o.image.Key)
		if err != nil {
			return err
		}
		if err := s.checkURL(url); err != nil {
			return err
		}
		up = upgradeMessage(o, url)
	}
	switch o.kind {
	case protocol.KindUpgrade:
		return s.pub.PublishUpgrade(ctx, o.pk, o.device, *up)
	case protocol.KindFirmwareGet:
		return s.pub.PublishGetReply(ctx, o.pk, o.device, o.id, up)
	default:
		return s.pub.PublishRequestReply(ctx, o.pk, o.device, up)
	}
}

// checkURL refuses a URL that would crash a device in the field, unless
// long URLs were opted in.
func (s *sender) checkURL(url string) error {
	if s.longURLs {
		return nil
	}
	if last := s.checked.Load(); last != nil && *last == url {
		return nil
	}
	if err := protocol.CheckDeviceURL(url); err != nil {
		return fmt.Errorf("refusing to send a download URL devices cannot take: %w", err)
	}
	s.checked.Store(&url)
	return nil
}

func upgradeMessage(o *outgoing, url string) *protocol.Upgrade {
	img := o.image
	u := &protocol.Upgrade{
		Version: o.version, URL: url, Size: img.Size, MD5: img.MD5,
		SignMethod: protocol.SignMD5, Sign: img.MD5, Diff: img.Diff, ExtData: img.ExtData,
	}
	if img.SignMethod == otav1.SignMethodSHA256 {
		u.SignMethod, u.Sign = protocol.SignSHA256, img.SHA256
	}
	if o.module != otav1.DefaultModule {
		u.Module = o.module
	}
	return u
}
