package lab

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// Client is the lab's Kubernetes client.
func (l *Lab) Client() client.Client { return l.ControlPlane.Client }

// CreateProduct creates the Product (and its namespace, unless it exists)
// and waits until the rollout engine has registered its product key, so
// that devices of that key are taken in from then on.
func (l *Lab) CreateProduct(ctx context.Context, p *otav1.Product) error {
	c := l.Client()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: p.Namespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if err := c.Create(ctx, p); err != nil {
		return err
	}
	err := Poll(ctx, time.Minute, func() (bool, error) {
		_, ok := l.Parts.Engine.ProductKeyOf(client.ObjectKeyFromObject(p))
		return ok, nil
	})
	if err != nil {
		return fmt.Errorf("the engine did not register product %s: %w", p.Spec.ProductKey, err)
	}
	return nil
}

// PushFirmware creates a Firmware with an upload source and uploads image
// through the pre-signed URL the controller publishes, the way
// `kubectl ota firmware push` does, then waits until it is Ready.
func (l *Lab) PushFirmware(ctx context.Context, fw *otav1.Firmware, image []byte) error {
	fw.Spec.Source = otav1.FirmwareSource{Upload: &otav1.UploadSource{}}
	c := l.Client()
	if err := c.Create(ctx, fw); err != nil {
		return err
	}
	var url string
	err := Poll(ctx, time.Minute, func() (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(fw), fw); err != nil {
			return false, err
		}
		if fw.Status.Upload != nil {
			url = fw.Status.Upload.URL
		}
		return url != "", nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the upload URL: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(image))
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(image))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("upload refused: %s", resp.Status)
	}
	return Poll(ctx, 2*time.Minute, func() (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(fw), fw); err != nil {
			return false, err
		}
		return apimeta.IsStatusConditionTrue(fw.Status.Conditions, otav1.ConditionReady), nil
	})
}

// WaitRun waits until a VerificationRun finished and returns it.
func (l *Lab) WaitRun(ctx context.Context, vr *otav1.VerificationRun, timeout time.Duration) error {
	return Poll(ctx, timeout, func() (bool, error) {
		if err := l.Client().Get(ctx, client.ObjectKeyFromObject(vr), vr); err != nil {
			return false, err
		}
		p := vr.Status.Phase
		return p == otav1.RunSucceeded || p == otav1.RunFailed || p == otav1.RunCanceled, nil
	})
}

// WaitBatch polls a batch until done(batch) or the timeout; each poll calls
// progress, if set, with the latest batch.
func (l *Lab) WaitBatch(ctx context.Context, ub *otav1.UpgradeBatch, timeout time.Duration,
	done func(*otav1.UpgradeBatch) bool, progress func(*otav1.UpgradeBatch)) error {
	return Poll(ctx, timeout, func() (bool, error) {
		if err := l.Client().Get(ctx, client.ObjectKeyFromObject(ub), ub); err != nil {
			return false, err
		}
		if progress != nil {
			progress(ub)
		}
		return done(ub), nil
	})
}

// Finished reports whether a batch reached a final phase.
func Finished(ub *otav1.UpgradeBatch) bool {
	p := ub.Status.Phase
	return p == otav1.BatchCompleted || p == otav1.BatchAborted || p == otav1.BatchCanceled
}

// Poll calls cond every 50 ms until it returns true, an error, or the
// timeout passes.
func Poll(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("condition not met within %s", timeout)
		case <-t.C:
		}
	}
}

// ObjectMeta is a shorthand for tests and the playground.
func ObjectMeta(namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name}
}
